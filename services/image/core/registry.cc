#include "services/image/core/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/oci_config.h"
#include "services/image/core/oci_manifest.h"

namespace nodeagent::image {
namespace {

constexpr int64_t kMaxConfigBytes = 4 << 20;

}  // namespace

absl::StatusOr<PullResult> PullImage(ImageStore& store, absl::string_view ref,
                                     const RegistryOptions& options, const ProgressFn& progress,
                                     bool unpack) {
  const std::string what = absl::StrCat("pull \"", ref, "\"");
  absl::StatusOr<RegistryReference> parsed = ParseRegistryReference(ref);
  if (!parsed.ok()) return Annotate(parsed.status(), what);
  absl::StatusOr<RegistryOptions> access = WithCredentials(options, parsed->registry);
  if (!access.ok()) return Annotate(access.status(), what);
  RegistryClient client(parsed->registry, *access);
  absl::StatusOr<RegistryClient::Manifest> top =
      client.GetManifest(parsed->repository, parsed->ManifestReference());
  if (!top.ok()) return Annotate(top.status(), what);
  RegistryClient::Manifest manifest = *top;
  std::string kind;
  if (IsIndexMediaType(manifest.media_type)) {
    kind = "index";
  } else if (IsManifestMediaType(manifest.media_type)) {
    kind = "manifest";
  } else {
    absl::StatusOr<std::string> sniffed = ManifestKind(manifest.bytes);
    if (!sniffed.ok()) return Annotate(sniffed.status(), what);
    kind = *sniffed;
  }
  if (kind == "index") {
    absl::StatusOr<OciIndex> index = ParseIndex(manifest.bytes);
    if (!index.ok()) return Annotate(index.status(), what);
    absl::StatusOr<Descriptor> picked = SelectPlatform(*index, "linux", HostOciArchitecture());
    if (!picked.ok()) return Annotate(picked.status(), what);
    absl::StatusOr<RegistryClient::Manifest> chosen =
        client.GetManifest(parsed->repository, picked->digest);
    if (!chosen.ok()) return Annotate(chosen.status(), what);
    manifest = *chosen;
  }
  absl::StatusOr<OciManifest> image_manifest = ParseManifest(manifest.bytes);
  if (!image_manifest.ok()) return Annotate(image_manifest.status(), what);
  for (const Descriptor& layer : image_manifest->layers) {
    NA_RETURN_IF_ERROR(Annotate(LayerCompressionOf(layer.media_type).status(), what));
  }
  absl::StatusOr<std::string> config =
      client.GetBlob(parsed->repository, image_manifest->config.digest, kMaxConfigBytes);
  if (!config.ok()) return Annotate(config.status(), absl::StrCat(what, ": config"));

  ImageImportSpec spec;
  if (!parsed->tag.empty()) spec.names.push_back(parsed->Name());
  spec.config_bytes = *config;
  spec.manifest_bytes = manifest.bytes;
  spec.unpack = unpack;
  const std::string repository = parsed->repository;
  // Layers download in parallel: their progress reports are serialized here.
  auto progress_mu = std::make_shared<absl::Mutex>();
  ProgressFn serialized;
  if (progress) {
    serialized = [progress_mu, progress](const BlobProgress& p) {
      absl::MutexLock lock(progress_mu.get());
      progress(p);
    };
  }
  for (const Descriptor& layer : image_manifest->layers) {
    spec.layers.push_back({layer,
                           [&client, repository, layer, progress = serialized]() {
                             std::function<void(int64_t)> on_bytes;
                             if (progress) {
                               int64_t next = 0;
                               on_bytes = [layer, progress, next](int64_t done) mutable {
                                 if (done < next && done != layer.size) return;
                                 next = done + (256 << 10);
                                 progress({layer.digest, done, layer.size, "downloading"});
                               };
                             }
                             return client.OpenBlob(repository, layer.digest, on_bytes);
                           },
                           "", nullptr});
  }
  absl::StatusOr<Image> image = store.ImportImage(spec, serialized);
  if (!image.ok()) return Annotate(image.status(), what);
  LogInfo("%s: image %s, manifest %s, %d layers", what, image->id, manifest.digest,
          image_manifest->layers.size());
  return PullResult{*std::move(image), manifest.digest};
}

absl::StatusOr<std::string> PushImage(ImageStore& store, absl::string_view image_ref,
                                      absl::string_view ref, const RegistryOptions& options,
                                      const ProgressFn& progress) {
  const std::string what = absl::StrCat("push \"", image_ref, "\" to \"", ref, "\"");
  absl::StatusOr<RegistryReference> parsed = ParseRegistryReference(ref);
  if (!parsed.ok()) return Annotate(parsed.status(), what);
  if (parsed->tag.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": push needs a tag, not a digest"));
  }
  absl::StatusOr<StoredManifest> stored = store.GetManifest(image_ref);
  if (!stored.ok()) return Annotate(stored.status(), what);
  absl::StatusOr<RegistryOptions> access = WithCredentials(options, parsed->registry);
  if (!access.ok()) return Annotate(access.status(), what);
  RegistryClient client(parsed->registry, *access);
  std::vector<Descriptor> blobs = stored->manifest.layers;
  blobs.push_back(stored->manifest.config);
  for (const Descriptor& blob : blobs) {
    absl::StatusOr<bool> has = client.HasBlob(parsed->repository, blob.digest);
    if (!has.ok()) return Annotate(has.status(), what);
    if (*has) {
      if (progress) progress({blob.digest, blob.size, blob.size, "exists"});
      continue;
    }
    absl::StatusOr<std::string> path = store.BlobPath(blob.digest);
    if (!path.ok()) return Annotate(path.status(), what);
    std::function<void(int64_t)> on_bytes;
    if (progress) {
      on_bytes = [blob, progress](int64_t done) {
        progress({blob.digest, done, blob.size, "uploading"});
      };
    }
    absl::Status uploaded = client.UploadBlob(parsed->repository, blob.digest, *path, on_bytes);
    if (!uploaded.ok()) return Annotate(uploaded, what);
    if (progress) progress({blob.digest, blob.size, blob.size, "pushed"});
  }
  std::string media_type = stored->manifest.media_type.empty() ? std::string(kMediaTypeOciManifest)
                                                               : stored->manifest.media_type;
  absl::StatusOr<std::string> digest =
      client.PutManifest(parsed->repository, parsed->tag, media_type, stored->bytes);
  if (!digest.ok()) return Annotate(digest.status(), what);
  LogInfo("%s: manifest %s", what, *digest);
  return digest;
}

absl::Status CheckRegistryHost(absl::string_view registry) {
  // The same rule as a reference's first component, checked by parsing one.
  absl::StatusOr<RegistryReference> parsed =
      ParseRegistryReference(absl::StrCat(registry, "/login-check"));
  if (!parsed.ok() || parsed->registry != registry) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", registry, "\" is not a registry host (host[:port], e.g. 127.0.0.1:5000)"));
  }
  return absl::OkStatus();
}

absl::Status LoginRegistry(CredentialStore& credentials, absl::string_view registry,
                           const Credentials& login, RegistryOptions options) {
  const std::string what = absl::StrCat("login to ", registry);
  NA_RETURN_IF_ERROR(Annotate(CheckRegistryHost(registry), what));
  if (login.username.empty() || login.username.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the user name must be non-empty and have no ':'"));
  }
  if (login.password.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": empty password"));
  }
  options.credentials = login;
  RegistryClient client(std::string(registry), options);
  NA_RETURN_IF_ERROR(client.CheckAccess());
  NA_RETURN_IF_ERROR(
      Annotate(credentials.Put(registry, login), absl::StrCat(what, ": save credentials")));
  LogInfo("%s: credentials of user \"%s\" saved in %s", what, login.username, credentials.path());
  return absl::OkStatus();
}

absl::StatusOr<bool> LogoutRegistry(CredentialStore& credentials, absl::string_view registry) {
  const std::string what = absl::StrCat("logout from ", registry);
  NA_RETURN_IF_ERROR(Annotate(CheckRegistryHost(registry), what));
  absl::StatusOr<bool> removed = credentials.Remove(registry);
  if (!removed.ok()) return Annotate(removed.status(), what);
  return *removed;
}

}  // namespace nodeagent::image
