// ImageStore: the content store (blobs, layers, manifests), archives, tags and garbage
// collection. Snapshot changes (diff, commit, export) are in image_store_changes.cc.

#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/blob_store.h"
#include "services/image/core/digest.h"
#include "services/image/core/image_store.h"
#include "services/image/core/layer_prefetch.h"
#include "services/image/core/layer_unpack.h"
#include "services/image/core/parallel.h"
#include "services/image/core/reference.h"
#include "services/image/core/tar_writer.h"

namespace nodeagent::image {
namespace {

// Manifests, indexes and configs are small; anything bigger is hostile.
constexpr int64_t kMaxMetadataBlobBytes = 4 << 20;
constexpr int64_t kProgressStep = 1 << 20;
constexpr size_t kTarBlockBytes = 512;

std::string HexPart(absl::string_view digest) {
  absl::string_view hex = digest;
  absl::ConsumePrefix(&hex, kSha256Prefix);
  return std::string(hex);
}

// Path of an untrusted file that will be streamed (a layer).
absl::StatusOr<std::string> UntrustedPath(const std::string& dir, const std::string& relative) {
  absl::StatusOr<std::string> clean = SanitizeEntryPath(relative);
  if (!clean.ok() || clean->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", relative, "\": not a path in the archive"));
  }
  if (absl::Status s = CheckNoSymlinksBeneath(dir, *clean); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", relative, "\": ", absl::IsNotFound(s) ? "missing" : "resolves through a symlink"));
  }
  std::string path = absl::StrCat(dir, "/", *clean);
  // The last component too: a symlink there would be followed by open().
  NA_ASSIGN_OR_RETURN(PathInfo info, LStat(path));
  if (!S_ISREG(info.mode)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", relative, "\": not a regular file"));
  }
  return path;
}

// Reads a small file of an untrusted directory: below `dir`, no symlinks, bounded size.
absl::StatusOr<std::string> ReadUntrusted(const std::string& dir, const std::string& relative) {
  NA_ASSIGN_OR_RETURN(std::string path, UntrustedPath(dir, relative));
  NA_ASSIGN_OR_RETURN(PathInfo info, LStat(path));
  if (info.size > kMaxMetadataBlobBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", relative, "\": ", info.size, " bytes, over the limit for metadata"));
  }
  return linux::ReadFile(path);
}

// Reads a metadata blob of an OCI layout and checks its digest.
absl::StatusOr<std::string> ReadLayoutBlob(const std::string& dir, const Descriptor& d) {
  NA_ASSIGN_OR_RETURN(std::string hex, ParseSha256Digest(d.digest));
  NA_ASSIGN_OR_RETURN(std::string bytes, ReadUntrusted(dir, absl::StrCat("blobs/sha256/", hex)));
  std::string actual = Sha256Digest(Sha256Hex(bytes));
  if (actual != d.digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob ", d.digest, ": content has digest ", actual));
  }
  return bytes;
}

std::vector<std::string> NamesFromAnnotations(const std::map<std::string, std::string>& a) {
  for (absl::string_view key : {kAnnotationContainerdName, kAnnotationRefName}) {
    auto it = a.find(std::string(key));
    if (it == a.end()) continue;
    // ref.name may be a bare tag ("latest"), which names no repository: skip it then.
    if (key == kAnnotationRefName && it->second.find_first_of(":/") == std::string::npos) {
      continue;
    }
    absl::StatusOr<ImageName> name = ParseImageName(it->second);
    if (name.ok()) return {name->ToString()};
    LogWarning("ignoring image name \"%s\": %s", it->second, name.status().message());
  }
  return {};
}

// Checks a layer's blob (digest, size) against its manifest descriptor and its uncompressed
// tar against the config's diff id; an empty expectation is not checked.
absl::Status CheckLayerDigests(const Descriptor& expected, absl::string_view digest, int64_t size,
                               absl::string_view expected_diff_id, absl::string_view diff_id) {
  if (expected.size > 0 && size != expected.size) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", expected.digest, ": ", size,
                                                   " bytes, the manifest says ", expected.size));
  }
  if (!expected.digest.empty() && digest != expected.digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob digest mismatch: expected ", expected.digest, ", got ", digest));
  }
  if (!expected_diff_id.empty() && diff_id != expected_diff_id) {
    return absl::InvalidArgumentError(absl::StrCat("uncompressed layer has digest ", diff_id,
                                                   ", the image config says ", expected_diff_id));
  }
  return absl::OkStatus();
}

// Moves a verified blob file (below the store's tmp/) into the content store; the same blob
// stored already is kept.
absl::Status AdoptBlob(const std::string& path, const std::string& blob_file) {
  absl::Status moved = RenameNoReplace(path, blob_file);
  return absl::IsAlreadyExists(moved) ? absl::OkStatus() : moved;
}

// The descriptor of a layer just committed to the store (the manifest's media type, or the
// one its compression calls for), after the final progress report.
Descriptor CommittedLayerDescriptor(const UnpackedLayer& unpacked, const Descriptor& expected,
                                    const std::string& digest, int64_t stored_size,
                                    const ProgressFn& progress) {
  Descriptor descriptor;
  descriptor.media_type = expected.media_type.empty() ? OciLayerMediaType(unpacked.blob_compression)
                                                      : expected.media_type;
  descriptor.digest = digest;
  descriptor.size = stored_size;
  if (progress) progress({digest, stored_size, stored_size, "done"});
  return descriptor;
}

}  // namespace

std::string ImageStore::BlobFile(absl::string_view digest) const {
  return absl::StrCat(root_, "/blobs/sha256/", HexPart(digest));
}

absl::StatusOr<std::string> ImageStore::BlobPath(absl::string_view digest) const {
  NA_RETURN_IF_ERROR(ParseSha256Digest(digest).status());
  std::string path = BlobFile(digest);
  if (!linux::PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("blob ", digest, ": not in the store"));
  }
  return path;
}

absl::StatusOr<std::string> ImageStore::WriteBlob(absl::string_view bytes,
                                                  absl::string_view expected) {
  std::string digest = Sha256Digest(Sha256Hex(bytes));
  if (!expected.empty() && digest != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob digest mismatch: expected ", expected, ", got ", digest));
  }
  std::string path = BlobFile(digest);
  if (!linux::PathExists(path)) NA_RETURN_IF_ERROR(linux::WriteFileAtomic(path, bytes, 0644));
  return digest;
}

absl::StatusOr<std::string> ImageStore::MakeLayerWorkDir() const {
  NA_ASSIGN_OR_RETURN(std::string work, MakeTempDir(absl::StrCat(root_, "/tmp"), "layer-"));
  // mkdtemp made it 0700; a root directory entry in the tar may change it again.
  if (absl::Status s = ChangeMode(work, 0755); !s.ok()) {
    RemoveTreeOrWarn(work);
    return s;
  }
  return work;
}

UnpackOptions ImageStore::LayerUnpackOptions() const {
  UnpackOptions options;
  options.allow_device_nodes = RunningAsRoot();
  options.max_tar_bytes = max_layer_bytes_;
  return options;
}

absl::StatusOr<ImageStore::StoredLayer> ImageStore::StoreLayer(const ByteSource& source,
                                                               const Descriptor& expected,
                                                               absl::string_view expected_diff_id,
                                                               const ProgressFn& progress,
                                                               const std::string& adopt_path) {
  const std::string tmp = absl::StrCat(root_, "/tmp");
  // An adopted blob is only hashed; it is written out only if the unpacker switches the blob
  // to the decompressed tar (bzip2, xz).
  std::optional<BlobWriter> blob;
  int64_t adopt_size = 0;
  auto start_blob = [&]() -> absl::Status {
    NA_ASSIGN_OR_RETURN(BlobWriter writer, BlobWriter::Create(tmp));
    blob.emplace(std::move(writer));
    return absl::OkStatus();
  };
  if (adopt_path.empty()) NA_RETURN_IF_ERROR(start_blob());
  auto blob_size = [&] { return blob ? blob->size() : adopt_size; };
  NA_ASSIGN_OR_RETURN(std::string work, MakeLayerWorkDir());
  // Until CommitLayer renames it away, the half-made layer is ours to remove.
  absl::Cleanup remove_work = [&work] { RemoveTreeOrWarn(work); };

  UnpackOptions options = LayerUnpackOptions();
  // The blob's digest is computed by the unpacker: once for a plain tar (it is the diff id).
  options.hash_input = true;
  int64_t next_report = kProgressStep;
  options.blob_sink = [&](absl::string_view data) -> absl::Status {
    if (blob) {
      NA_RETURN_IF_ERROR(blob->WriteUnhashed(data));
    } else {
      adopt_size += static_cast<int64_t>(data.size());
    }
    if (progress && blob_size() >= next_report) {
      next_report = blob_size() + kProgressStep;
      progress({expected.digest, blob_size(), expected.size, "unpacking"});
    }
    return absl::OkStatus();
  };
  options.blob_reset = [&]() -> absl::Status {
    if (blob) return blob->Reset();
    return start_blob();
  };
  NA_ASSIGN_OR_RETURN(UnpackedLayer unpacked, UnpackLayer(source, work, options));

  const std::string diff_id = Sha256Digest(unpacked.diff_id_hex);
  const std::string digest = Sha256Digest(unpacked.blob_digest_hex);
  const int64_t stored_size = blob_size();
  NA_RETURN_IF_ERROR(CheckLayerDigests(expected, digest, stored_size, expected_diff_id, diff_id));
  // The layer (synced, and the blob with it) first, then the blob's rename: after a crash
  // a layer and a blob are whole or absent.
  NA_ASSIGN_OR_RETURN(LayerRecord record, FinishLayer(work, unpacked.diff_id_hex));
  std::move(remove_work).Cancel();
  if (blob) {
    NA_RETURN_IF_ERROR(
        blob->PublishHashed(absl::StrCat(root_, "/blobs/sha256"), digest, expected.digest)
            .status());
  } else {
    NA_RETURN_IF_ERROR(AdoptBlob(adopt_path, BlobFile(digest)));
  }
  return StoredLayer{
      diff_id, CommittedLayerDescriptor(unpacked, expected, digest, stored_size, progress), record};
}

absl::StatusOr<ImageStore::StoredLayer> ImageStore::StorePreparedLayer(
    const PreparedLayer& prepared, const Descriptor& expected, absl::string_view expected_diff_id,
    const ProgressFn& progress, const std::string& adopt_path) {
  const std::string& work = prepared.dir();
  // Claimed by the caller: until CommitLayer renames it away, it is ours to remove.
  absl::Cleanup remove_work = [&work] { RemoveTreeOrWarn(work); };
  const UnpackedLayer& unpacked = prepared.unpacked();
  const std::string diff_id = Sha256Digest(unpacked.diff_id_hex);
  const std::string digest = Sha256Digest(unpacked.blob_digest_hex);
  const int64_t stored_size = unpacked.input_bytes;
  NA_RETURN_IF_ERROR(CheckLayerDigests(expected, digest, stored_size, expected_diff_id, diff_id));
  NA_ASSIGN_OR_RETURN(LayerRecord record, FinishLayer(work, unpacked.diff_id_hex));
  std::move(remove_work).Cancel();
  NA_RETURN_IF_ERROR(AdoptBlob(adopt_path, BlobFile(digest)));
  LogDebug("layer %s: unpacked while its archive streamed in", diff_id);
  return StoredLayer{
      diff_id, CommittedLayerDescriptor(unpacked, expected, digest, stored_size, progress), record};
}

// --- Layers kept as blobs and unpacked on first use ----------------------------------------

absl::StatusOr<ImageStore::StoredLayer> ImageStore::StoreLayerBlob(
    const ByteSource& source, const Descriptor& expected, absl::string_view expected_diff_id,
    const ProgressFn& progress, const std::string& adopt_path) {
  // The first 512 bytes (a tar header) tell the format; a network source may hand them over
  // in pieces. A copy: the source may reuse its buffer for the next chunk.
  std::string head;
  while (head.size() < kTarBlockBytes) {
    NA_ASSIGN_OR_RETURN(absl::string_view chunk, source());
    if (chunk.empty()) break;
    head.append(chunk.data(), chunk.size());
  }
  const LayerCompression compression = SniffCompression(head);
  constexpr size_t kTarMagicOffset = 257;
  const bool plain_tar = compression == LayerCompression::kNone &&
                         head.size() >= kTarMagicOffset + 5 &&
                         head.compare(kTarMagicOffset, 5, "ustar") == 0;
  if (compression == LayerCompression::kNone && !plain_tar) {
    // bzip2, xz or no tar at all: StoreLayer keeps such a layer as its decompressed tar (OCI
    // has no media type for it) or says what is wrong with it, now.
    bool replayed = false;
    ByteSource replay = [&]() -> absl::StatusOr<absl::string_view> {
      if (replayed) return source();
      replayed = true;
      return absl::string_view(head);
    };
    return StoreLayer(replay, expected, expected_diff_id, progress, adopt_path);
  }

  std::optional<BlobWriter> writer;  // Unset for an adopted file, which is only hashed.
  Sha256 adopted_hash;
  if (adopt_path.empty()) {
    NA_ASSIGN_OR_RETURN(BlobWriter created, BlobWriter::Create(absl::StrCat(root_, "/tmp")));
    writer.emplace(std::move(created));
  }
  int64_t size = 0;
  auto take = [&](absl::string_view data) -> absl::Status {
    size += static_cast<int64_t>(data.size());
    if (max_layer_bytes_ > 0 && size > max_layer_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "blob ", expected.digest, ": over the limit of ", max_layer_bytes_, " bytes"));
    }
    if (!writer) {
      adopted_hash.Update(data);
      return absl::OkStatus();
    }
    return writer->Write(data);
  };
  NA_RETURN_IF_ERROR(take(head));
  for (bool ended = head.size() < kTarBlockBytes; !ended;) {
    NA_ASSIGN_OR_RETURN(absl::string_view chunk, source());
    ended = chunk.empty();
    NA_RETURN_IF_ERROR(take(chunk));
  }
  const std::string digest = writer ? writer->Finish() : Sha256Digest(adopted_hash.FinishHex());
  // A plain tar is its own diff id: checked now. A compressed one is checked when unpacked,
  // unless it claims to be its own diff id (which the unpack would then trust).
  NA_RETURN_IF_ERROR(
      CheckLayerDigests(expected, digest, size, plain_tar ? expected_diff_id : "", digest));
  if (!plain_tar && digest == expected_diff_id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob ", digest, " is compressed, yet the image config gives it as its diff id"));
  }
  // The bytes reach the disk before the blob appears under its digest.
  NA_RETURN_IF_ERROR(SyncFilesystemOf(absl::StrCat(root_, "/tmp")));
  if (writer) {
    NA_RETURN_IF_ERROR(writer->Publish(absl::StrCat(root_, "/blobs/sha256"), digest).status());
  } else {
    NA_RETURN_IF_ERROR(AdoptBlob(adopt_path, BlobFile(digest)));
  }
  Descriptor blob;
  blob.media_type =
      expected.media_type.empty() ? OciLayerMediaType(compression) : expected.media_type;
  blob.digest = digest;
  blob.size = size;
  if (progress) progress({digest, size, size, "done"});
  return StoredLayer{std::string(expected_diff_id), std::move(blob), std::nullopt};
}

absl::StatusOr<LayerRecord> ImageStore::UnpackStoredLayer(const std::string& diff_id,
                                                          const Descriptor& blob) {
  NA_ASSIGN_OR_RETURN(ByteSource source, OpenFileSource(BlobFile(blob.digest)));
  NA_ASSIGN_OR_RETURN(std::string work, MakeLayerWorkDir());
  absl::Cleanup remove_work = [&work] { RemoveTreeOrWarn(work); };
  UnpackOptions options = LayerUnpackOptions();
  // A blob that is the tar itself was verified by its digest, which is then the diff id: it
  // is not hashed again. Whether it is the tar is known once the unpacker has looked at it.
  options.compute_diff_id = blob.digest != diff_id;
  NA_ASSIGN_OR_RETURN(UnpackedLayer unpacked, UnpackLayer(source, work, options));
  if (!options.compute_diff_id && unpacked.input_compressed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob ", blob.digest, " is compressed, yet the image config gives it as its diff id"));
  }
  if (options.compute_diff_id) {
    NA_RETURN_IF_ERROR(CheckLayerDigests({}, "", 0, diff_id, Sha256Digest(unpacked.diff_id_hex)));
  }
  NA_ASSIGN_OR_RETURN(LayerRecord record, FinishLayer(work, HexPart(diff_id)));
  std::move(remove_work).Cancel();
  return record;
}

absl::Status ImageStore::UnpackMissingLayers(const std::string& id, absl::string_view what) {
  struct Missing {
    std::string diff_id;
    Descriptor blob;
  };
  auto find_missing = [&]() -> absl::StatusOr<std::vector<Missing>> {
    absl::ReaderMutexLock lock(&mu_);
    auto it = images_.find(id);
    if (it == images_.end()) {
      return absl::NotFoundError(absl::StrCat(what, ": image ", id, " was removed meanwhile"));
    }
    const StoredImage& stored = it->second;
    std::vector<Missing> missing;
    std::set<std::string> seen;
    for (size_t i = 0; i < stored.record.layers.size(); ++i) {
      const std::string& diff_id = stored.record.layers[i];
      if (layers_.contains(diff_id) || !seen.insert(diff_id).second) continue;
      const Descriptor* blob = LayerBlob(stored.manifest ? &*stored.manifest : nullptr, i);
      if (blob == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat(what, ": layer ", diff_id, " of image ", id, " is not stored"));
      }
      missing.push_back({diff_id, *blob});
    }
    return missing;
  };
  NA_ASSIGN_OR_RETURN(std::vector<Missing> missing, find_missing());
  if (missing.empty()) return absl::OkStatus();
  absl::ReaderMutexLock gc(&gc_mu_);
  absl::MutexLock one_image_at_a_time(&unpack_mu_);
  // Another request may have unpacked them while this one waited.
  NA_ASSIGN_OR_RETURN(missing, find_missing());
  if (missing.empty()) return absl::OkStatus();
  const absl::Time start = absl::Now();
  std::vector<absl::StatusOr<LayerRecord>> records(missing.size(), absl::UnknownError("not run"));
  ForEachInParallel(missing.size(), kParallelLayers, [&](size_t i) {
    records[i] = UnpackStoredLayer(missing[i].diff_id, missing[i].blob);
  });

  absl::MutexLock lock(&mu_);
  // Layers that did unpack are kept (each is whole and checked) even when another failed.
  auto layers = layers_;
  absl::Status first_error;
  for (size_t i = 0; i < missing.size(); ++i) {
    if (records[i].ok()) {
      layers.try_emplace(missing[i].diff_id, *records[i]);
    } else if (first_error.ok()) {
      // The request was fine; the image's stored content is what does not unpack.
      absl::Status status = records[i].status();
      if (absl::IsInvalidArgument(status) || absl::IsNotFound(status)) {
        status = absl::FailedPreconditionError(status.message());
      }
      first_error = Annotate(status, absl::StrCat(what, ": image ", id.substr(0, 19), ": layer ",
                                                  missing[i].blob.digest, " does not unpack"));
    }
  }
  std::swap(layers, layers_);
  if (absl::Status s = WriteIndexLocked(); !s.ok()) {
    std::swap(layers, layers_);
    return Annotate(s, what);
  }
  if (!first_error.ok()) return first_error;
  LogInfo("%s: image %s: %d layer%s unpacked in %s", what, id, missing.size(),
          missing.size() == 1 ? "" : "s",
          absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))));
  return absl::OkStatus();
}

absl::StatusOr<Image> ImageStore::UnpackImage(absl::string_view ref) {
  const std::string what = absl::StrCat("unpack image \"", ref, "\"");
  std::string id;
  {
    absl::ReaderMutexLock lock(&mu_);
    absl::StatusOr<std::string> resolved = ResolveLocked(ref);
    if (!resolved.ok()) return Annotate(resolved.status(), what);
    id = *resolved;
  }
  NA_RETURN_IF_ERROR(UnpackMissingLayers(id, what));
  absl::StatusOr<Image> image = GetImage(id);
  if (!image.ok()) return Annotate(image.status(), what);
  return image;
}

absl::StatusOr<Image> ImageStore::PublishImage(const std::vector<std::string>& names,
                                               const std::string& config_bytes,
                                               const std::string& manifest_bytes,
                                               const std::vector<StoredLayer>& layers,
                                               absl::string_view what) {
  absl::StatusOr<OciImageConfig> oci = ParseOciConfig(config_bytes);
  if (!oci.ok()) return Annotate(oci.status(), what);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> id = WriteBlob(config_bytes, "");
  if (!id.ok()) return Annotate(id.status(), what);

  std::string manifest_text = manifest_bytes;
  if (manifest_text.empty()) {
    OciManifest manifest;
    manifest.media_type = std::string(kMediaTypeOciManifest);
    manifest.config = Descriptor{std::string(kMediaTypeOciConfig),
                                 *id,
                                 static_cast<int64_t>(config_bytes.size()),
                                 {},
                                 std::nullopt};
    for (const StoredLayer& layer : layers) manifest.layers.push_back(layer.blob);
    manifest_text = SerializeManifest(manifest);
  }
  absl::StatusOr<OciManifest> manifest = ParseManifest(manifest_text);
  if (!manifest.ok()) return Annotate(manifest.status(), what);
  absl::StatusOr<std::string> manifest_digest = WriteBlob(manifest_text, "");
  if (!manifest_digest.ok()) return Annotate(manifest_digest.status(), what);

  // Applied to copies and swapped in only once the index is on disk.
  auto images = images_;
  auto names_copy = names_;
  auto layers_copy = layers_;
  for (const StoredLayer& layer : layers) {
    if (layer.record) layers_copy.try_emplace(layer.diff_id, *layer.record);
  }
  for (size_t i = 0; i < oci->diff_ids.size(); ++i) {
    if (!LayerStored(layers_copy, oci->diff_ids[i], &*manifest, i)) {
      return absl::InternalError(
          absl::StrCat(what, ": layer ", oci->diff_ids[i], " is not stored"));
    }
  }
  StoredImage& stored = images[*id];
  stored.record.created = oci->created;
  stored.record.layers = oci->diff_ids;
  stored.record.manifest = *manifest_digest;
  stored.record.size_bytes = StoredBytes(oci->diff_ids, &*manifest, layers_copy).bytes;
  stored.config = oci->config;
  stored.oci = *oci;
  stored.manifest = *manifest;
  for (const std::string& tag : names) {
    if (auto old = names_copy.find(tag); old != names_copy.end() && old->second != *id) {
      images[old->second].record.names.erase(tag);
    }
    names_copy[tag] = *id;
    stored.record.names.insert(tag);
  }
  std::swap(images, images_);
  std::swap(names_copy, names_);
  std::swap(layers_copy, layers_);
  if (absl::Status s = WriteIndexLocked(); !s.ok()) {
    std::swap(images, images_);
    std::swap(names_copy, names_);
    std::swap(layers_copy, layers_);
    return Annotate(s, what);
  }
  return ToImageLocked(*id, images_.at(*id));
}

absl::StatusOr<Image> ImageStore::ImportImage(const ImageImportSpec& spec,
                                              const ProgressFn& progress) {
  absl::ReaderMutexLock gc(&gc_mu_);
  const std::string what =
      spec.names.empty() ? "import image" : absl::StrCat("import image \"", spec.names[0], "\"");
  std::vector<std::string> names;
  for (const std::string& name : spec.names) {
    absl::StatusOr<ImageName> parsed = ParseImageName(name);
    if (!parsed.ok()) return Annotate(parsed.status(), what);
    names.push_back(parsed->ToString());
  }
  absl::StatusOr<OciImageConfig> oci = ParseOciConfig(spec.config_bytes);
  if (!oci.ok()) return Annotate(oci.status(), what);
  if (oci->diff_ids.size() != spec.layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the config lists ",
                                                   oci->diff_ids.size(), " layers, the manifest ",
                                                   spec.layers.size()));
  }
  if (!spec.manifest_bytes.empty()) {
    absl::StatusOr<OciManifest> manifest = ParseManifest(spec.manifest_bytes);
    if (!manifest.ok()) return Annotate(manifest.status(), what);
    std::string config_digest = Sha256Digest(Sha256Hex(spec.config_bytes));
    if (manifest->config.digest != config_digest) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": config has digest ", config_digest,
                                                     ", the manifest says ",
                                                     manifest->config.digest));
    }
  }

  // Layers are fetched and unpacked in parallel (each is independent until PublishImage);
  // progress reports are serialized for the caller.
  absl::Mutex progress_mu;
  ProgressFn serialized;
  if (progress) {
    serialized = [&](const BlobProgress& p) {
      absl::MutexLock lock(&progress_mu);
      progress(p);
    };
  }
  const size_t count = spec.layers.size();
  // The layers and blobs this import may write, claimed until it ends: a concurrent import
  // that fails and cleans up leaves them alone even before an image refers to them.
  std::vector<std::string> claimed;
  auto claim = [&](const std::string& digest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (digest.empty()) return;
    claimed.push_back(digest);
    in_flight_.insert(digest);
  };
  auto release_claims = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const std::string& digest : claimed) in_flight_.erase(in_flight_.find(digest));
    claimed.clear();
  };
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < count; ++i) {
      claim(oci->diff_ids[i]);
      claim(spec.layers[i].descriptor.digest);
    }
  }
  absl::Cleanup release = [&] {
    absl::MutexLock lock(&mu_);
    release_claims();
  };
  std::vector<absl::StatusOr<StoredLayer>> results(count, absl::UnknownError("not run"));
  std::vector<bool> created(count, false);
  auto work = [&](size_t i) {
    const LayerSourceSpec& layer = spec.layers[i];
    const std::string& diff_id = oci->diff_ids[i];
    const std::string which =
        absl::StrCat("layer ", i + 1, "/", count, layer.descriptor.digest.empty() ? "" : " ",
                     layer.descriptor.digest);
    auto done = [&](absl::StatusOr<StoredLayer> one) {
      if (one.ok() && layer.descriptor.digest.empty()) {
        // A digest learnt from the content (docker-save archives name none).
        absl::MutexLock lock(&mu_);
        claim(one->blob.digest);
      }
      results[i] = one.ok() ? std::move(one) : Annotate(one.status(), which);
    };
    bool blob_stored = false;
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = layers_.find(diff_id);
      blob_stored =
          !layer.descriptor.digest.empty() && linux::PathExists(BlobFile(layer.descriptor.digest));
      if (blob_stored && (it != layers_.end() || !spec.unpack)) {
        results[i] = StoredLayer{diff_id, layer.descriptor,
                                 it != layers_.end() ? std::optional(it->second) : std::nullopt};
        if (serialized) {
          serialized(
              {layer.descriptor.digest, layer.descriptor.size, layer.descriptor.size, "exists"});
        }
        return;
      }
      created[i] = it == layers_.end();
    }
    if (blob_stored) {
      // Stored earlier without unpacking: unpacked from the store, not fetched again.
      absl::StatusOr<LayerRecord> record = UnpackStoredLayer(diff_id, layer.descriptor);
      if (!record.ok()) return done(record.status());
      if (serialized) {
        serialized({layer.descriptor.digest, layer.descriptor.size, layer.descriptor.size, "done"});
      }
      return done(StoredLayer{diff_id, layer.descriptor, *record});
    }
    if (layer.prepared != nullptr && !layer.adopt_path.empty() && layer.prepared->Claim()) {
      return done(StorePreparedLayer(*layer.prepared, layer.descriptor, diff_id, serialized,
                                     layer.adopt_path));
    }
    absl::StatusOr<ByteSource> source = layer.open();
    if (!source.ok()) return done(source.status());
    if (!spec.unpack) {
      return done(StoreLayerBlob(*source, layer.descriptor, diff_id, serialized, layer.adopt_path));
    }
    done(StoreLayer(*source, layer.descriptor, diff_id, serialized, layer.adopt_path));
  };
  ForEachInParallel(count, kParallelLayers, work);

  std::vector<StoredLayer> stored;
  std::set<std::string> new_layers;
  std::set<std::string> new_blobs;
  absl::Status first_error;
  for (size_t i = 0; i < count; ++i) {
    if (!results[i].ok()) {
      if (first_error.ok()) first_error = results[i].status();
      continue;
    }
    // Only a layer this import unpacked may be removed again (a blob-only one made none).
    if (created[i] && results[i]->record) new_layers.insert(results[i]->diff_id);
    // Candidates only: blobs an image refers to are never removed.
    new_blobs.insert(results[i]->blob.digest);
    stored.push_back(*results[i]);
  }
  auto fail = [&](const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    release_claims();
    // What another import in progress claims is its to keep.
    std::erase_if(new_layers, [&](const std::string& d) { return in_flight_.contains(d); });
    std::erase_if(new_blobs, [&](const std::string& d) { return in_flight_.contains(d); });
    PruneReport ignored;
    RemoveUnreferencedLocked(new_layers, new_blobs, &ignored);
    return Annotate(status, what);
  };
  if (!first_error.ok()) return fail(first_error);
  absl::StatusOr<Image> image =
      PublishImage(names, spec.config_bytes, spec.manifest_bytes, stored, what);
  if (!image.ok()) return fail(image.status());
  return image;
}

absl::StatusOr<std::vector<Image>> ImageStore::LoadArchive(const ByteSource& source, bool unpack) {
  NA_ASSIGN_OR_RETURN(std::string dir, MakeTempDir(absl::StrCat(root_, "/tmp"), "load-"));
  absl::Cleanup remove_dir = [&dir] { RemoveTreeOrWarn(dir); };
  // The layers are unpacked while the archive still streams in (see layer_prefetch.h),
  // unless they are to be kept as blobs only.
  std::optional<LayerPrefetcher> prefetch;
  if (unpack) {
    UnpackOptions layer_options;
    layer_options.allow_device_nodes = RunningAsRoot();
    layer_options.max_tar_bytes = max_layer_bytes_;
    layer_options.start_writeback = true;
    prefetch.emplace(absl::StrCat(root_, "/tmp"), layer_options, kParallelLayers);
  }
  UnpackOptions options;
  options.convert_whiteouts = false;
  options.allow_device_nodes = false;
  options.max_tar_bytes = max_layer_bytes_;
  // Only a container of files: its own digest is of no use.
  options.compute_diff_id = false;
  options.start_writeback = true;
  if (prefetch) {
    options.on_entry_start = [&prefetch](const ExtractedEntry& e) { prefetch->OnEntryStart(e); };
    options.on_entry_data = [&prefetch](int64_t written) { prefetch->OnEntryData(written); };
    options.on_entry_end = [&prefetch] { prefetch->OnEntryEnd(); };
  }
  absl::StatusOr<UnpackedLayer> unpacked = UnpackLayer(source, dir, options);
  LogDebug("load archive: %d entries received", unpacked.ok() ? unpacked->entries : -1);
  if (prefetch) prefetch->Finish(unpacked.ok());
  if (!unpacked.ok()) return Annotate(unpacked.status(), "load archive");
  return LoadDirectoryImpl(dir, /*adopt=*/true, unpack, prefetch ? &*prefetch : nullptr);
}

absl::StatusOr<std::vector<Image>> ImageStore::LoadDirectory(const std::string& dir, bool unpack) {
  return LoadDirectoryImpl(dir, /*adopt=*/false, unpack, nullptr);
}

absl::StatusOr<std::vector<Image>> ImageStore::LoadDirectoryImpl(const std::string& dir, bool adopt,
                                                                 bool unpack,
                                                                 LayerPrefetcher* prefetch) {
  if (linux::PathExists(absl::StrCat(dir, "/index.json"))) {
    return LoadOciLayout(dir, adopt, unpack, prefetch);
  }
  if (linux::PathExists(absl::StrCat(dir, "/manifest.json"))) {
    return LoadDockerSave(dir, adopt, unpack, prefetch);
  }
  return absl::InvalidArgumentError(
      "load: neither an OCI image layout (index.json) nor a docker-save archive (manifest.json)");
}

absl::StatusOr<std::vector<Image>> ImageStore::LoadOciLayout(const std::string& dir, bool adopt,
                                                             bool unpack,
                                                             LayerPrefetcher* prefetch) {
  constexpr absl::string_view kWhat = "load OCI layout";
  absl::StatusOr<std::string> layout = ReadUntrusted(dir, "oci-layout");
  if (!layout.ok()) return Annotate(layout.status(), kWhat);
  NA_RETURN_IF_ERROR(Annotate(CheckOciLayout(*layout), kWhat));
  absl::StatusOr<std::string> index_text = ReadUntrusted(dir, "index.json");
  if (!index_text.ok()) return Annotate(index_text.status(), kWhat);
  absl::StatusOr<OciIndex> index = ParseIndex(*index_text);
  if (!index.ok()) return Annotate(index.status(), kWhat);
  if (index->manifests.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": index.json lists no image"));
  }
  std::vector<Image> images;
  for (const Descriptor& entry : index->manifests) {
    std::vector<std::string> names = NamesFromAnnotations(entry.annotations);
    Descriptor manifest_desc = entry;
    if (IsIndexMediaType(entry.media_type)) {
      NA_ASSIGN_OR_RETURN(std::string nested_text, ReadLayoutBlob(dir, entry));
      NA_ASSIGN_OR_RETURN(OciIndex nested, ParseIndex(nested_text));
      absl::StatusOr<Descriptor> picked = SelectPlatform(nested, "linux", HostOciArchitecture());
      if (!picked.ok()) return Annotate(picked.status(), kWhat);
      manifest_desc = *picked;
    }
    absl::StatusOr<std::string> manifest_text = ReadLayoutBlob(dir, manifest_desc);
    if (!manifest_text.ok()) return Annotate(manifest_text.status(), kWhat);
    absl::StatusOr<OciManifest> manifest = ParseManifest(*manifest_text);
    if (!manifest.ok()) return Annotate(manifest.status(), kWhat);
    absl::StatusOr<std::string> config = ReadLayoutBlob(dir, manifest->config);
    if (!config.ok()) return Annotate(config.status(), absl::StrCat(kWhat, ": config"));
    ImageImportSpec spec;
    spec.names = names;
    spec.config_bytes = *config;
    spec.unpack = unpack;
    spec.manifest_bytes = *manifest_text;
    for (const Descriptor& layer : manifest->layers) {
      NA_RETURN_IF_ERROR(Annotate(LayerCompressionOf(layer.media_type).status(), kWhat));
      NA_ASSIGN_OR_RETURN(std::string hex, ParseSha256Digest(layer.digest));
      const std::string relative = absl::StrCat("blobs/sha256/", hex);
      NA_ASSIGN_OR_RETURN(std::string path, UntrustedPath(dir, relative));
      std::shared_ptr<PreparedLayer> prepared;
      if (adopt && prefetch != nullptr) prepared = prefetch->Take(relative);
      spec.layers.push_back(
          {layer, [path]() -> absl::StatusOr<ByteSource> { return OpenFileSource(path); },
           adopt ? path : "", std::move(prepared)});
    }
    NA_ASSIGN_OR_RETURN(Image image, ImportImage(spec));
    images.push_back(std::move(image));
  }
  return images;
}

absl::StatusOr<std::vector<Image>> ImageStore::LoadDockerSave(const std::string& dir, bool adopt,
                                                              bool unpack,
                                                              LayerPrefetcher* prefetch) {
  constexpr absl::string_view kWhat = "load docker-save archive";
  absl::StatusOr<std::string> text = ReadUntrusted(dir, "manifest.json");
  if (!text.ok()) return Annotate(text.status(), kWhat);
  absl::StatusOr<std::vector<DockerSaveImage>> entries = ParseDockerSaveManifest(*text);
  if (!entries.ok()) return Annotate(entries.status(), kWhat);
  if (entries->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": manifest.json lists no image"));
  }
  std::vector<Image> images;
  for (const DockerSaveImage& entry : *entries) {
    absl::StatusOr<std::string> config = ReadUntrusted(dir, entry.config);
    if (!config.ok()) return Annotate(config.status(), absl::StrCat(kWhat, ": config"));
    ImageImportSpec spec;
    spec.config_bytes = *config;
    spec.unpack = unpack;
    for (const std::string& tag : entry.repo_tags) {
      absl::StatusOr<ImageName> name = ParseImageName(tag);
      if (name.ok()) {
        spec.names.push_back(name->ToString());
      } else {
        LogWarning("%s: ignoring name \"%s\": %s", kWhat, tag, name.status().message());
      }
    }
    for (const std::string& layer : entry.layers) {
      // The blob digest is not written down in a docker-save archive; the config's diff ids
      // still verify every layer's content.
      NA_ASSIGN_OR_RETURN(std::string path, UntrustedPath(dir, layer));
      std::shared_ptr<PreparedLayer> prepared;
      if (absl::StatusOr<std::string> relative = SanitizeEntryPath(layer);
          adopt && prefetch != nullptr && relative.ok()) {
        prepared = prefetch->Take(*relative);
      }
      spec.layers.push_back(
          {Descriptor{}, [path]() -> absl::StatusOr<ByteSource> { return OpenFileSource(path); },
           adopt ? path : "", std::move(prepared)});
    }
    NA_ASSIGN_OR_RETURN(Image image, ImportImage(spec));
    images.push_back(std::move(image));
  }
  return images;
}

absl::StatusOr<StoredManifest> ImageStore::GetManifest(absl::string_view ref) const {
  absl::ReaderMutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(std::string id, ResolveLocked(ref));
  const StoredImage& stored = images_.at(id);
  if (!stored.manifest || stored.record.manifest.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "image ", id, " was stored before the content store kept manifests; import it again"));
  }
  StoredManifest out;
  out.digest = stored.record.manifest;
  out.manifest = *stored.manifest;
  NA_ASSIGN_OR_RETURN(out.bytes, linux::ReadFile(BlobFile(out.digest)));
  NA_ASSIGN_OR_RETURN(out.config_bytes, linux::ReadFile(BlobFile(id)));
  return out;
}

absl::Status ImageStore::SaveArchive(const std::vector<std::string>& refs, const ByteSink& sink) {
  struct Entry {
    StoredManifest stored;
    std::vector<std::string> names;
  };
  std::vector<Entry> entries;
  for (const std::string& ref : refs) {
    absl::StatusOr<StoredManifest> stored = GetManifest(ref);
    if (!stored.ok()) return Annotate(stored.status(), absl::StrCat("save \"", ref, "\""));
    NA_ASSIGN_OR_RETURN(Image image, GetImage(ref));
    Entry entry{*std::move(stored), {}};
    // Saving by name keeps that name; saving by id keeps every name the image has.
    absl::StatusOr<ImageName> name = ParseImageName(ref);
    if (name.ok() &&
        std::find(image.names.begin(), image.names.end(), name->ToString()) != image.names.end()) {
      entry.names = {name->ToString()};
    } else {
      entry.names = image.names;
    }
    entries.push_back(std::move(entry));
  }
  TarWriter tar;
  NA_RETURN_IF_ERROR(tar.Open(LayerCompression::kNone, &sink));
  NA_RETURN_IF_ERROR(tar.AddBytes("oci-layout", kOciLayoutFile));
  std::set<std::string> written;
  OciIndex index;
  index.media_type = std::string(kMediaTypeOciIndex);
  std::vector<DockerSaveImage> docker;
  auto add_blob = [&](const std::string& digest) -> absl::Status {
    if (!written.insert(digest).second) return absl::OkStatus();
    NA_ASSIGN_OR_RETURN(std::string path, BlobPath(digest));
    return tar.AddFromDisk(path, absl::StrCat("blobs/sha256/", HexPart(digest)));
  };
  for (Entry& entry : entries) {
    // An OCI layout holds OCI manifests: a manifest pulled in Docker's format is converted
    // (same config and layers, new manifest digest).
    std::string manifest_bytes = entry.stored.bytes;
    std::string manifest_digest = entry.stored.digest;
    if (entry.stored.manifest.media_type != kMediaTypeOciManifest) {
      manifest_bytes = SerializeManifest(ToOciMediaTypes(entry.stored.manifest));
      manifest_digest = Sha256Digest(Sha256Hex(manifest_bytes));
    }
    if (written.insert(manifest_digest).second) {
      NA_RETURN_IF_ERROR(
          tar.AddBytes(absl::StrCat("blobs/sha256/", HexPart(manifest_digest)), manifest_bytes));
    }
    NA_RETURN_IF_ERROR(add_blob(entry.stored.manifest.config.digest));
    DockerSaveImage docker_entry;
    docker_entry.config =
        absl::StrCat("blobs/sha256/", HexPart(entry.stored.manifest.config.digest));
    for (const Descriptor& layer : entry.stored.manifest.layers) {
      NA_RETURN_IF_ERROR(add_blob(layer.digest));
      docker_entry.layers.push_back(absl::StrCat("blobs/sha256/", HexPart(layer.digest)));
    }
    docker_entry.repo_tags = entry.names;
    docker.push_back(std::move(docker_entry));
    Descriptor d{std::string(kMediaTypeOciManifest),
                 manifest_digest,
                 static_cast<int64_t>(manifest_bytes.size()),
                 {},
                 std::nullopt};
    if (entry.names.empty()) {
      index.manifests.push_back(d);
    }
    for (const std::string& name : entry.names) {
      Descriptor named = d;
      named.annotations[std::string(kAnnotationContainerdName)] = name;
      absl::StatusOr<ImageName> parsed = ParseImageName(name);
      named.annotations[std::string(kAnnotationRefName)] = parsed.ok() ? parsed->tag : name;
      index.manifests.push_back(std::move(named));
    }
  }
  NA_RETURN_IF_ERROR(tar.AddBytes("index.json", SerializeIndex(index)));
  NA_RETURN_IF_ERROR(tar.AddBytes("manifest.json", SerializeDockerSaveManifest(docker)));
  return tar.Close();
}

absl::StatusOr<Image> ImageStore::TagImage(absl::string_view source, absl::string_view target) {
  const std::string what = absl::StrCat("tag \"", source, "\" as \"", target, "\"");
  absl::StatusOr<ImageName> name = ParseImageName(target);
  if (!name.ok()) return Annotate(name.status(), what);
  const std::string tag = name->ToString();
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> id = ResolveLocked(source);
  if (!id.ok()) return Annotate(id.status(), what);
  auto images = images_;
  auto names = names_;
  if (auto old = names.find(tag); old != names.end() && old->second != *id) {
    images[old->second].record.names.erase(tag);
  }
  names[tag] = *id;
  images[*id].record.names.insert(tag);
  std::swap(images, images_);
  std::swap(names, names_);
  if (absl::Status s = WriteIndexLocked(); !s.ok()) {
    std::swap(images, images_);
    std::swap(names, names_);
    return Annotate(s, what);
  }
  return ToImageLocked(*id, images_.at(*id));
}

std::set<std::string> ImageStore::ReferencedBlobsLocked() const {
  std::set<std::string> blobs;
  for (const auto& [id, stored] : images_) {
    blobs.insert(id);
    if (!stored.record.manifest.empty()) blobs.insert(stored.record.manifest);
    if (stored.manifest) {
      blobs.insert(stored.manifest->config.digest);
      for (const Descriptor& layer : stored.manifest->layers) blobs.insert(layer.digest);
    }
  }
  return blobs;
}

void ImageStore::RemoveUnreferencedLocked(const std::set<std::string>& layer_candidates,
                                          const std::set<std::string>& blob_candidates,
                                          PruneReport* report) {
  std::set<std::string> used_layers;
  for (const auto& [id, stored] : images_) {
    used_layers.insert(stored.record.layers.begin(), stored.record.layers.end());
  }
  bool index_changed = false;
  for (const std::string& diff_id : layer_candidates) {
    if (used_layers.contains(diff_id)) continue;
    const std::string hex = HexPart(diff_id);
    std::string link = hex.substr(0, 16);
    if (auto it = layers_.find(diff_id); it != layers_.end()) {
      link = it->second.link;
      layers_.erase(it);
      index_changed = true;
    }
    const std::string dir = LayerDir(diff_id);
    absl::StatusOr<int64_t> size = linux::DiskUsage(dir);
    // Out of layers/ first (atomic), then deleted: a crash leaves only tmp/ debris.
    absl::StatusOr<std::string> doomed = MakeTempDir(absl::StrCat(root_, "/tmp"), "gc-");
    absl::Status s =
        doomed.ok() ? RenameNoReplace(dir, absl::StrCat(*doomed, "/layer")) : doomed.status();
    if (s.ok() || absl::IsNotFound(s)) {
      if (doomed.ok()) linux::RemoveTree(*doomed).IgnoreError();
      linux::RemoveTree(absl::StrCat(root_, "/l/", link)).IgnoreError();
      report->deleted.push_back(diff_id);
      if (size.ok()) report->reclaimed_bytes += *size;
    } else {
      if (doomed.ok()) linux::RemoveTree(*doomed).IgnoreError();
      LogWarning("remove layer %s: %s", diff_id, s.message());
    }
  }
  std::set<std::string> used_blobs = ReferencedBlobsLocked();
  for (const std::string& digest : blob_candidates) {
    if (used_blobs.contains(digest) || !ParseSha256Digest(digest).ok()) continue;
    const std::string path = BlobFile(digest);
    absl::StatusOr<PathInfo> info = LStat(path);
    if (!info.ok()) continue;
    if (absl::Status s = linux::RemoveTree(path); s.ok()) {
      report->deleted.push_back(digest);
      report->reclaimed_bytes += info->size;
    }
  }
  if (index_changed) {
    if (absl::Status s = WriteIndexLocked(); !s.ok()) LogError("write index: %s", s.message());
  }
}

absl::StatusOr<RemovedImages> ImageStore::RemoveImage(absl::string_view ref, bool force) {
  const std::string what = absl::StrCat("remove image \"", ref, "\"");
  absl::MutexLock gc(&gc_mu_);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> resolved = ResolveLocked(ref);
  if (!resolved.ok()) return Annotate(resolved.status(), what);
  const std::string id = *resolved;
  StoredImage& stored = images_.at(id);
  RemovedImages result;
  std::optional<std::string> by_name;
  if (absl::StatusOr<ImageName> name = ParseImageName(ref);
      name.ok() && names_.contains(name->ToString()) && names_.at(name->ToString()) == id) {
    by_name = name->ToString();
  }
  std::vector<std::string> users;
  for (const auto& [key, snapshot] : snapshots_) {
    if (snapshot.image_id == id) users.push_back(key);
  }
  auto untag = [&](const std::vector<std::string>& tags) -> absl::Status {
    auto images = images_;
    auto names = names_;
    for (const std::string& tag : tags) {
      images[id].record.names.erase(tag);
      names.erase(tag);
    }
    std::swap(images, images_);
    std::swap(names, names_);
    if (absl::Status s = WriteIndexLocked(); !s.ok()) {
      std::swap(images, images_);
      std::swap(names, names_);
      return Annotate(s, what);
    }
    result.untagged.insert(result.untagged.end(), tags.begin(), tags.end());
    return absl::OkStatus();
  };
  // A name among several: only the name goes.
  if (by_name && stored.record.names.size() > 1) {
    NA_RETURN_IF_ERROR(untag({*by_name}));
    return result;
  }
  if (!users.empty()) {
    if (!force) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": image ", id.substr(0, 19), " is used by ", users.size(),
                       " container(s) (", users[0].substr(0, 12), users.size() > 1 ? ", ..." : "",
                       "); remove them first or force"));
    }
    std::vector<std::string> tags(stored.record.names.begin(), stored.record.names.end());
    NA_RETURN_IF_ERROR(untag(tags));
    return result;
  }
  if (!by_name && stored.record.names.size() > 1 && !force) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": image has ",
                                                      stored.record.names.size(),
                                                      " names; remove them one by one or force"));
  }
  std::vector<std::string> tags(stored.record.names.begin(), stored.record.names.end());
  std::set<std::string> layer_candidates(stored.record.layers.begin(), stored.record.layers.end());
  std::set<std::string> blob_candidates = {id};
  if (!stored.record.manifest.empty()) blob_candidates.insert(stored.record.manifest);
  if (stored.manifest) {
    for (const Descriptor& layer : stored.manifest->layers) blob_candidates.insert(layer.digest);
  }
  auto images = images_;
  auto names = names_;
  for (const std::string& tag : tags) names.erase(tag);
  images.erase(id);
  std::swap(images, images_);
  std::swap(names, names_);
  if (absl::Status s = WriteIndexLocked(); !s.ok()) {
    std::swap(images, images_);
    std::swap(names, names_);
    return Annotate(s, what);
  }
  result.untagged = tags;
  result.deleted.push_back(id);
  PruneReport report;
  RemoveUnreferencedLocked(layer_candidates, blob_candidates, &report);
  for (const std::string& d : report.deleted) {
    if (d != id) result.deleted.push_back(d);
  }
  return result;
}

absl::StatusOr<PruneReport> ImageStore::Prune(bool all) {
  absl::MutexLock gc(&gc_mu_);
  absl::MutexLock lock(&mu_);
  PruneReport report;
  std::set<std::string> used;
  for (const auto& [key, snapshot] : snapshots_) used.insert(snapshot.image_id);
  std::vector<std::string> doomed;
  for (const auto& [id, stored] : images_) {
    if (used.contains(id)) continue;
    if (all || stored.record.names.empty()) doomed.push_back(id);
  }
  if (!doomed.empty()) {
    auto images = images_;
    auto names = names_;
    for (const std::string& id : doomed) {
      for (const std::string& tag : images.at(id).record.names) names.erase(tag);
      images.erase(id);
    }
    std::swap(images, images_);
    std::swap(names, names_);
    if (absl::Status s = WriteIndexLocked(); !s.ok()) {
      std::swap(images, images_);
      std::swap(names, names_);
      return Annotate(s, "prune images");
    }
    report.deleted = doomed;
  }
  // Every layer and blob on disk is a candidate: also those an interrupted import left.
  std::set<std::string> layer_candidates;
  for (const auto& [diff_id, record] : layers_) layer_candidates.insert(diff_id);
  NA_ASSIGN_OR_RETURN(std::vector<std::string> layer_dirs,
                      linux::ListDir(absl::StrCat(root_, "/layers")));
  for (const std::string& hex : layer_dirs) {
    if (IsSha256Hex(hex)) layer_candidates.insert(Sha256Digest(hex));
  }
  std::set<std::string> blob_candidates;
  NA_ASSIGN_OR_RETURN(std::vector<std::string> blobs,
                      linux::ListDir(absl::StrCat(root_, "/blobs/sha256")));
  for (const std::string& hex : blobs) {
    if (IsSha256Hex(hex)) blob_candidates.insert(Sha256Digest(hex));
  }
  RemoveUnreferencedLocked(layer_candidates, blob_candidates, &report);
  // Short links whose layer is gone.
  if (absl::StatusOr<std::vector<std::string>> links = linux::ListDir(absl::StrCat(root_, "/l"));
      links.ok()) {
    for (const std::string& link : *links) {
      std::string path = absl::StrCat(root_, "/l/", link);
      if (!IsDirectory(absl::StrCat(path, "/."))) linux::RemoveTree(path).IgnoreError();
    }
  }
  return report;
}

absl::StatusOr<std::vector<HistoryItem>> ImageStore::History(absl::string_view ref) const {
  absl::ReaderMutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(std::string id, ResolveLocked(ref));
  const StoredImage& stored = images_.at(id);
  const std::vector<std::string>& diff_ids = stored.record.layers;
  // Bytes on disk of layer i: unpacked, or its blob until it is.
  auto layer_bytes = [&](size_t i) -> int64_t {
    if (auto it = layers_.find(diff_ids[i]); it != layers_.end()) return it->second.size_bytes;
    const Descriptor* blob = LayerBlob(stored.manifest ? &*stored.manifest : nullptr, i);
    return blob != nullptr ? blob->size : 0;
  };
  std::vector<HistoryItem> items;
  size_t layer = 0;
  for (const OciHistoryEntry& entry : stored.oci.history) {
    HistoryItem item;
    item.created = entry.created;
    item.created_by = entry.created_by;
    item.comment = entry.comment;
    if (!entry.empty_layer && layer < diff_ids.size()) {
      item.size_bytes = layer_bytes(layer);
      item.layer = diff_ids[layer++];
    }
    items.push_back(std::move(item));
  }
  // Layers the history does not account for (images made without history).
  for (; layer < diff_ids.size(); ++layer) {
    HistoryItem item;
    item.layer = diff_ids[layer];
    item.size_bytes = layer_bytes(layer);
    items.push_back(std::move(item));
  }
  std::reverse(items.begin(), items.end());
  return items;
}

absl::StatusOr<DiskUsageReport> ImageStore::DiskUsage() const {
  DiskUsageReport report;
  std::vector<std::pair<std::string, std::string>> snapshots;
  {
    absl::ReaderMutexLock lock(&mu_);
    std::set<std::string> used_images;
    for (const auto& [key, snapshot] : snapshots_) {
      used_images.insert(snapshot.image_id);
      snapshots.emplace_back(key, snapshot.image_id);
    }
    std::set<std::string> used_layers;
    for (const auto& [id, stored] : images_) {
      ++report.images;
      if (used_images.contains(id)) {
        ++report.images_in_use;
        used_layers.insert(stored.record.layers.begin(), stored.record.layers.end());
      }
    }
    for (const auto& [diff_id, record] : layers_) {
      ++report.layers;
      report.layer_bytes += record.size_bytes;
      if (!used_layers.contains(diff_id)) report.layer_bytes_reclaimable += record.size_bytes;
    }
    std::set<std::string> used_blobs;
    for (const auto& [id, stored] : images_) {
      if (!used_images.contains(id)) continue;
      used_blobs.insert(id);
      if (stored.manifest) {
        used_blobs.insert(stored.record.manifest);
        for (const Descriptor& l : stored.manifest->layers) used_blobs.insert(l.digest);
      }
    }
    NA_ASSIGN_OR_RETURN(std::vector<std::string> blobs,
                        linux::ListDir(absl::StrCat(root_, "/blobs/sha256")));
    for (const std::string& hex : blobs) {
      absl::StatusOr<PathInfo> info = LStat(absl::StrCat(root_, "/blobs/sha256/", hex));
      if (!info.ok()) continue;
      ++report.blobs;
      report.blob_bytes += info->size;
      if (!used_blobs.contains(Sha256Digest(hex))) report.blob_bytes_reclaimable += info->size;
    }
  }
  for (const auto& [key, image_id] : snapshots) {
    absl::StatusOr<int64_t> size = linux::DiskUsage(absl::StrCat(SnapshotDir(key), "/upper"));
    report.snapshots.push_back({key, image_id, size.ok() ? *size : 0});
  }
  return report;
}

}  // namespace nodeagent::image
