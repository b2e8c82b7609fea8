// ImageStore: a snapshot's changes against its image (diff), as a new layer and image
// (commit), and its whole filesystem as a tar (export). These read the snapshot's upper
// directory and the image's layer directories directly; nothing is mounted.

#include <fcntl.h>

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"
#include "services/image/core/image_store.h"
#include "services/image/core/reference.h"

namespace nodeagent::image {

absl::Status ImageStore::SnapshotDirs(absl::string_view key, std::string* upper,
                                      std::vector<std::string>* lowers, std::string* image_id,
                                      OwnerMap* owners) const {
  NA_RETURN_IF_ERROR(ValidateSnapshotKey(key));
  absl::ReaderMutexLock lock(&mu_);
  auto it = snapshots_.find(std::string(key));
  if (it == snapshots_.end()) {
    return absl::NotFoundError(absl::StrCat("snapshot \"", key, "\": no such snapshot"));
  }
  auto image = images_.find(it->second.image_id);
  if (image == images_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot \"", key, "\": its image ", it->second.image_id, " is gone"));
  }
  *upper = absl::StrCat(SnapshotDir(key), "/upper");
  *image_id = it->second.image_id;
  if (owners != nullptr) *owners = it->second.owners;
  lowers->clear();
  const std::vector<std::string>& layers = image->second.record.layers;
  for (auto l = layers.rbegin(); l != layers.rend(); ++l) lowers->push_back(LayerDir(*l));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FileChange>> ImageStore::DiffSnapshot(absl::string_view key) const {
  std::string upper;
  std::string image_id;
  std::vector<std::string> lowers;
  NA_RETURN_IF_ERROR(SnapshotDirs(key, &upper, &lowers, &image_id));
  absl::StatusOr<std::vector<FileChange>> changes = ComputeChanges(upper, lowers);
  if (!changes.ok()) return Annotate(changes.status(), absl::StrCat("diff snapshot \"", key, "\""));
  return changes;
}

absl::Status ImageStore::ExportSnapshot(absl::string_view key, const ByteSink& sink) const {
  std::string upper;
  std::string image_id;
  std::vector<std::string> lowers;
  OwnerMap owners;
  NA_RETURN_IF_ERROR(SnapshotDirs(key, &upper, &lowers, &image_id, &owners));
  std::vector<std::string> dirs = {upper};
  dirs.insert(dirs.end(), lowers.begin(), lowers.end());
  return Annotate(WriteMergedTar(dirs, sink, owners),
                  absl::StrCat("export snapshot \"", key, "\""));
}

absl::StatusOr<Image> ImageStore::CommitSnapshot(absl::string_view key, absl::string_view name,
                                                 const CommitOptions& options) {
  const std::string what = absl::StrCat("commit snapshot \"", key, "\"");
  std::vector<std::string> names;
  if (!name.empty()) {
    absl::StatusOr<ImageName> parsed = ParseImageName(name);
    if (!parsed.ok()) return Annotate(parsed.status(), what);
    names.push_back(parsed->ToString());
  }
  absl::ReaderMutexLock gc(&gc_mu_);
  std::string upper;
  std::string image_id;
  std::vector<std::string> lowers;
  OwnerMap owners;
  NA_RETURN_IF_ERROR(SnapshotDirs(key, &upper, &lowers, &image_id, &owners));
  OciImageConfig config;
  OciManifest manifest;
  {
    absl::ReaderMutexLock lock(&mu_);
    const StoredImage& parent = images_.at(image_id);
    if (!parent.manifest) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, ": image ", image_id, " was stored before manifests were kept; import it again"));
    }
    config = parent.oci;
    manifest = ToOciMediaTypes(*parent.manifest);
  }

  // The upper directory as an OCI layer (gzip), spooled to a file, then stored like any
  // other layer: unpacked (whiteouts back to overlay's form) and verified.
  NA_ASSIGN_OR_RETURN(std::string work, MakeTempDir(absl::StrCat(root_, "/tmp"), "commit-"));
  absl::Cleanup remove_work = [&work] { RemoveTreeOrWarn(work); };
  const std::string tar_path = absl::StrCat(work, "/layer.tar.gz");
  {
    NA_ASSIGN_OR_RETURN(linux::UniqueFd fd,
                        linux::OpenFile(tar_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ByteSink sink = [&fd](absl::string_view data) { return linux::WriteAll(fd.get(), data); };
    NA_RETURN_IF_ERROR(Annotate(WriteLayerTar(upper, LayerCompression::kGzip, sink, owners), what));
  }
  NA_ASSIGN_OR_RETURN(ByteSource source, OpenFileSource(tar_path));
  Descriptor expected;
  expected.media_type = std::string(kMediaTypeOciLayerGzip);
  absl::StatusOr<StoredLayer> layer = StoreLayer(source, expected, "", {});
  if (!layer.ok()) return Annotate(layer.status(), what);

  const absl::Time now = absl::Now();
  config.created = now;
  if (config.architecture.empty()) config.architecture = std::string(HostOciArchitecture());
  if (options.config) config.config = *options.config;
  // Images made without history get one entry per existing layer, so entries and layers
  // still line up.
  size_t with_layers =
      static_cast<size_t>(std::count_if(config.history.begin(), config.history.end(),
                                        [](const OciHistoryEntry& e) { return !e.empty_layer; }));
  while (with_layers < config.diff_ids.size()) {
    config.history.push_back(OciHistoryEntry{config.created, "", "", false});
    ++with_layers;
  }
  config.diff_ids.push_back(layer->diff_id);
  config.history.push_back(OciHistoryEntry{now, options.created_by, options.comment, false});
  const std::string config_bytes = SerializeOciConfig(config);
  manifest.config = Descriptor{std::string(kMediaTypeOciConfig),
                               Sha256Digest(Sha256Hex(config_bytes)),
                               static_cast<int64_t>(config_bytes.size()),
                               {},
                               std::nullopt};
  manifest.layers.push_back(layer->blob);
  return PublishImage(names, config_bytes, SerializeManifest(manifest), {*layer}, what);
}

}  // namespace nodeagent::image
