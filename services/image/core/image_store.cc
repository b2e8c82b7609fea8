#include "services/image/core/image_store.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"
#include "services/image/core/layer_unpack.h"
#include "services/image/core/reference.h"

namespace nodeagent::image {
namespace {

constexpr absl::string_view kIndexFile = "images.json";
constexpr absl::string_view kSnapshotRecordFile = "snapshot.json";
// Short link names: 16 hex digits of the diff id (64 bits; a collision is detected, and would
// need about 2^32 layers by chance).
constexpr size_t kLinkLength = 16;
// mount(2) copies at most one page of options.
constexpr size_t kMaxMountOptionsBytes = 4096;

// Owned by the store; 0700 so that host users cannot reach setuid binaries or device nodes
// that images carry.
constexpr absl::string_view kPrivateDirs[] = {"blobs", "blobs/sha256", "layers",
                                              "l",     "snapshots",    "tmp"};

std::string HexOf(absl::string_view digest) {
  absl::string_view hex = digest;
  absl::ConsumePrefix(&hex, kSha256Prefix);
  return std::string(hex);
}

// Best effort: finds a mount (in this process's mount namespace) of an overlay whose upper
// directory is `upper_dir`, to refuse deleting the upper of a running container.
std::optional<std::string> FindOverlayUsing(const std::string& upper_dir) {
  absl::StatusOr<std::string> mountinfo = linux::ReadFile("/proc/self/mountinfo");
  if (!mountinfo.ok()) return std::nullopt;
  const std::string wanted = absl::StrCat("upperdir=", upper_dir);
  for (absl::string_view line : absl::StrSplit(*mountinfo, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) continue;
    if (*(dash + 1) != "overlay") continue;
    for (absl::string_view option : absl::StrSplit(*(dash + 3), ',')) {
      if (option == wanted) return std::string(fields[4]);
    }
  }
  return std::nullopt;
}

}  // namespace

ImageStore::ImageStore(std::string root, FileLock lock, int64_t max_layer_bytes)
    : root_(std::move(root)), lock_(std::move(lock)), max_layer_bytes_(max_layer_bytes) {}

ImageStore::~ImageStore() = default;

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(const ImageStoreOptions& options) {
  const std::string what = absl::StrCat("open image store \"", options.root, "\"");
  if (!absl::StartsWith(options.root, "/")) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": root must be an absolute path"));
  }
  NA_RETURN_IF_ERROR(Annotate(linux::MakeDirs(options.root, 0711), what));
  NA_ASSIGN_OR_RETURN(std::string root, CanonicalPath(options.root));
  // Store paths end up in overlay mount options, where these characters are separators.
  if (root.find_first_of(",:\\ \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": root path must not contain ',', ':', '\\' or whitespace (overlay options)"));
  }
  for (absl::string_view dir : kPrivateDirs) {
    std::string path = absl::StrCat(root, "/", dir);
    NA_RETURN_IF_ERROR(Annotate(linux::MakeDirs(path, 0700), what));
    NA_RETURN_IF_ERROR(Annotate(ChangeMode(path, 0700), what));
  }
  absl::StatusOr<FileLock> lock = FileLock::Acquire(absl::StrCat(root, "/lock"));
  if (!lock.ok()) return Annotate(lock.status(), what);

  std::unique_ptr<ImageStore> store(
      new ImageStore(root, *std::move(lock), options.max_layer_bytes));
  NA_RETURN_IF_ERROR(Annotate(store->CleanTmp(), what));
  NA_RETURN_IF_ERROR(Annotate(store->Load(), what));
  NA_RETURN_IF_ERROR(Annotate(store->LoadSnapshots(), what));
  {
    absl::ReaderMutexLock guard(&store->mu_);
    LogInfo("image store %s: %d images, %d layers, %d snapshots", root, store->images_.size(),
            store->layers_.size(), store->snapshots_.size());
  }
  return store;
}

std::string ImageStore::LayerDir(absl::string_view diff_id) const {
  return absl::StrCat(root_, "/layers/", HexOf(diff_id));
}

std::string ImageStore::SnapshotDir(absl::string_view key) const {
  return absl::StrCat(root_, "/snapshots/", key);
}

absl::Status ImageStore::CleanTmp() {
  // Interrupted imports, snapshots being created or removed. Nothing outside tmp/ refers to
  // them. A failure (say, something left mounted) is logged, not fatal: the store still works.
  std::string tmp = absl::StrCat(root_, "/tmp");
  NA_ASSIGN_OR_RETURN(std::vector<std::string> names, linux::ListDir(tmp));
  for (const std::string& name : names) {
    std::string path = absl::StrCat(tmp, "/", name);
    if (absl::Status s = linux::RemoveTree(path); !s.ok()) {
      LogWarning("leftover \"%s\" not removed: %s", path, s.message());
    } else {
      LogInfo("removed leftover \"%s\"", path);
    }
  }
  return absl::OkStatus();
}

absl::Status ImageStore::Load() {
  std::string index_path = absl::StrCat(root_, "/", kIndexFile);
  StoreIndex index;
  if (linux::PathExists(index_path)) {
    NA_ASSIGN_OR_RETURN(std::string text, linux::ReadFile(index_path));
    absl::StatusOr<StoreIndex> parsed = ParseStoreIndex(text);
    if (!parsed.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("index \"", index_path, "\" is corrupt: ", parsed.status().message()));
    }
    index = *std::move(parsed);
  }

  // Reconcile the index with the disk: an image whose layer or config is gone cannot be
  // used, so it is dropped (loudly) rather than failing every later request.
  bool dropped = false;
  for (auto it = index.layers.begin(); it != index.layers.end();) {
    const std::string hex = HexOf(it->first);
    absl::Status link =
        IsDirectory(LayerDir(it->first))
            ? EnsureLayerLink(hex, it->second.link)
            : absl::NotFoundError(absl::StrCat("\"", LayerDir(it->first), "\" is missing"));
    if (!link.ok()) {
      LogError("layer %s unusable, dropped: %s", it->first, link.message());
      it = index.layers.erase(it);
      dropped = true;
    } else {
      ++it;
    }
  }
  absl::MutexLock lock(&mu_);
  for (auto& [id, record] : index.images) {
    std::string blob = absl::StrCat(root_, "/blobs/sha256/", HexOf(id));
    absl::StatusOr<std::string> text = linux::ReadFile(blob);
    absl::StatusOr<OciImageConfig> config =
        text.ok() ? ParseOciConfig(*text) : absl::StatusOr<OciImageConfig>(text.status());
    if (!config.ok()) {
      LogError("image %s unusable, dropped: %s", id, config.status().message());
      dropped = true;
      continue;
    }
    std::optional<OciManifest> manifest;
    if (!record.manifest.empty()) {
      absl::StatusOr<std::string> manifest_text =
          linux::ReadFile(absl::StrCat(root_, "/blobs/sha256/", HexOf(record.manifest)));
      absl::StatusOr<OciManifest> parsed =
          manifest_text.ok() ? ParseManifest(*manifest_text)
                             : absl::StatusOr<OciManifest>(manifest_text.status());
      if (!parsed.ok()) {
        LogError("image %s: manifest %s unusable (%s); it can no longer be saved or pushed", id,
                 record.manifest, parsed.status().message());
        record.manifest.clear();
        dropped = true;
      } else {
        manifest = *std::move(parsed);
      }
    }
    // Each layer is unpacked, or its blob is stored to be unpacked on first use.
    bool layers_ok = true;
    for (size_t i = 0; i < record.layers.size() && layers_ok; ++i) {
      layers_ok = LayerStored(index.layers, record.layers[i], manifest ? &*manifest : nullptr, i);
    }
    if (!layers_ok) {
      LogError("image %s unusable, dropped: a layer is missing", id);
      dropped = true;
      continue;
    }
    for (const std::string& name : record.names) names_[name] = id;
    ImageConfig run_config = config->config;
    images_[id] = StoredImage{std::move(record), std::move(run_config), *std::move(config),
                              std::move(manifest)};
  }
  layers_ = std::move(index.layers);
  if (dropped) NA_RETURN_IF_ERROR(WriteIndexLocked());
  return absl::OkStatus();
}

absl::Status ImageStore::LoadSnapshots() {
  std::string dir = absl::StrCat(root_, "/snapshots");
  NA_ASSIGN_OR_RETURN(std::vector<std::string> keys, linux::ListDir(dir));
  absl::MutexLock lock(&mu_);
  for (const std::string& key : keys) {
    std::string path = SnapshotDir(key);
    if (!ValidateSnapshotKey(key).ok() || !IsDirectory(path)) {
      LogWarning("ignoring \"%s\": not a snapshot", path);
      continue;
    }
    absl::StatusOr<std::string> text =
        linux::ReadFile(absl::StrCat(path, "/", kSnapshotRecordFile));
    absl::StatusOr<SnapshotRecord> record =
        text.ok() ? ParseSnapshotRecord(*text) : absl::StatusOr<SnapshotRecord>(text.status());
    if (!record.ok()) {
      // Snapshots are renamed into place complete, so this one was damaged by hand or by
      // the disk; an upper directory without its record cannot be trusted.
      LogWarning("snapshot \"%s\" has no valid record (%s); removing it", key,
                 record.status().message());
      RemoveTreeOrWarn(path);
      continue;
    }
    if (!images_.contains(record->image_id)) {
      LogWarning("snapshot \"%s\" refers to unknown image %s", key, record->image_id);
    }
    snapshots_[key] = *std::move(record);
  }
  return absl::OkStatus();
}

absl::Status ImageStore::EnsureLayerLink(const std::string& hex, const std::string& link) const {
  const std::string path = absl::StrCat(root_, "/l/", link);
  const std::string target = absl::StrCat("../layers/", hex);
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::string> current = ReadSymlink(path);
    if (current.ok()) {
      if (*current == target) return absl::OkStatus();
      return absl::InternalError(absl::StrCat("layer link \"", path, "\" points to \"", *current,
                                              "\", not \"", target, "\""));
    }
    if (!absl::IsNotFound(current.status())) return current.status();
    absl::Status created = CreateSymlink(target, path);
    // Lost a race with another import of the same layer: read what it made.
    if (created.ok() || !absl::IsAlreadyExists(created)) return created;
  }
  return absl::InternalError(absl::StrCat("layer link \"", path, "\": cannot create"));
}

absl::StatusOr<LayerRecord> ImageStore::CommitLayer(const std::string& unpacked_dir,
                                                    const std::string& hex, int64_t size_bytes) {
  const std::string diff_id = Sha256Digest(hex);
  absl::Status renamed = RenameNoReplace(unpacked_dir, LayerDir(diff_id));
  if (absl::IsAlreadyExists(renamed)) {
    // The same content is stored already (layers appear only complete): use that copy.
    LogInfo("layer %s already stored; reusing it", diff_id);
    RemoveTreeOrWarn(unpacked_dir);
  } else if (!renamed.ok()) {
    return renamed;
  }
  LayerRecord record{size_bytes, hex.substr(0, kLinkLength)};
  NA_RETURN_IF_ERROR(EnsureLayerLink(hex, record.link));
  return record;
}

absl::StatusOr<LayerRecord> ImageStore::FinishLayer(const std::string& work,
                                                    const std::string& hex) {
  // The tree is measured (a stat per entry) while syncfs waits for the disk.
  absl::StatusOr<int64_t> size_bytes = absl::UnknownError("not measured");
  std::thread measure([&] { size_bytes = linux::DiskUsage(work); });
  // Data first, then the rename that publishes it: after a crash a layer is whole or absent.
  absl::Status synced = SyncFilesystemOf(work);
  measure.join();
  NA_RETURN_IF_ERROR(synced);
  NA_RETURN_IF_ERROR(size_bytes.status());
  return CommitLayer(work, hex, *size_bytes);
}

absl::StatusOr<std::string> ImageStore::WriteConfigBlob(const OciImageConfig& config) {
  std::string bytes = SerializeOciConfig(config);
  std::string hex = Sha256Hex(bytes);
  std::string path = absl::StrCat(root_, "/blobs/sha256/", hex);
  if (!linux::PathExists(path)) NA_RETURN_IF_ERROR(linux::WriteFileAtomic(path, bytes, 0644));
  return Sha256Digest(hex);
}

absl::Status ImageStore::WriteIndexLocked() {
  StoreIndex index;
  for (const auto& [id, stored] : images_) index.images[id] = stored.record;
  index.layers = layers_;
  return linux::WriteFileAtomic(absl::StrCat(root_, "/", kIndexFile), SerializeStoreIndex(index),
                                0600);
}

absl::StatusOr<std::string> ImageStore::ResolveLocked(absl::string_view ref) const {
  std::set<std::string> ids;
  for (const auto& [id, stored] : images_) ids.insert(ids.end(), id);
  return ResolveImageReference(ref, names_, ids);
}

Image ImageStore::ToImageLocked(const std::string& id, const StoredImage& stored) const {
  Image image;
  image.names.assign(stored.record.names.begin(), stored.record.names.end());
  image.id = id;
  image.created = stored.record.created;
  image.layers = stored.record.layers;
  image.config = stored.config;
  ImageBytes bytes =
      StoredBytes(stored.record.layers, stored.manifest ? &*stored.manifest : nullptr, layers_);
  image.size_bytes = bytes.bytes;
  image.unpacked = bytes.unpacked;
  return image;
}

const Descriptor* ImageStore::LayerBlob(const OciManifest* manifest, size_t i) {
  return manifest != nullptr && i < manifest->layers.size() ? &manifest->layers[i] : nullptr;
}

bool ImageStore::LayerStored(const std::map<std::string, LayerRecord>& layers,
                             const std::string& diff_id, const OciManifest* manifest,
                             size_t i) const {
  const Descriptor* blob = LayerBlob(manifest, i);
  return layers.contains(diff_id) || (blob != nullptr && linux::PathExists(BlobFile(blob->digest)));
}

ImageStore::ImageBytes ImageStore::StoredBytes(const std::vector<std::string>& diff_ids,
                                               const OciManifest* manifest,
                                               const std::map<std::string, LayerRecord>& layers) {
  ImageBytes result;
  std::set<std::string> counted;
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    if (!counted.insert(diff_ids[i]).second) continue;
    if (auto it = layers.find(diff_ids[i]); it != layers.end()) {
      result.bytes += it->second.size_bytes;
      continue;
    }
    result.unpacked = false;
    if (const Descriptor* blob = LayerBlob(manifest, i)) result.bytes += blob->size;
  }
  return result;
}

std::vector<Image> ImageStore::ListImages() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Image> images;
  images.reserve(images_.size());
  for (const auto& [id, stored] : images_) images.push_back(ToImageLocked(id, stored));
  std::sort(images.begin(), images.end(), [](const Image& a, const Image& b) {
    return a.created != b.created ? a.created > b.created : a.id < b.id;
  });
  return images;
}

absl::StatusOr<Image> ImageStore::GetImage(absl::string_view ref) const {
  absl::ReaderMutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(std::string id, ResolveLocked(ref));
  return ToImageLocked(id, images_.at(id));
}

absl::StatusOr<Image> ImageStore::ImportRootfsTar(absl::string_view name, const ImageConfig& config,
                                                  const ByteSource& source,
                                                  const ImportOptions& options) {
  std::vector<std::string> names;
  if (!name.empty()) {
    absl::StatusOr<ImageName> parsed = ParseImageName(name);
    if (!parsed.ok()) return Annotate(parsed.status(), "import");
    names.push_back(parsed->ToString());
  }
  const std::string what = names.empty() ? "import" : absl::StrCat("import \"", names[0], "\"");
  const absl::Time start = absl::Now();
  absl::StatusOr<StoredLayer> layer = StoreLayer(source, Descriptor{}, "", {});
  if (!layer.ok()) return Annotate(layer.status(), what);

  OciImageConfig oci;
  oci.created = options.created.value_or(absl::Now());
  oci.architecture = std::string(HostOciArchitecture());
  oci.config = config;
  oci.diff_ids = {layer->diff_id};
  oci.history = {OciHistoryEntry{oci.created, options.created_by, options.comment, false}};
  absl::StatusOr<Image> image = PublishImage(names, SerializeOciConfig(oci), "", {*layer}, what);
  if (!image.ok()) return image.status();
  LogInfo("%s: image %s, layer %s (%d bytes on disk) in %s", what, image->id, layer->diff_id,
          layer->record->size_bytes,
          absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))));
  return image;
}

absl::StatusOr<PreparedSnapshot> ImageStore::PrepareSnapshot(absl::string_view key,
                                                             absl::string_view image_ref,
                                                             const OwnerMap& owners) {
  NA_RETURN_IF_ERROR(ValidateSnapshotKey(key));
  const std::string what = absl::StrCat("prepare snapshot \"", key, "\"");
  const std::string dir = SnapshotDir(key);
  PreparedSnapshot prepared;
  prepared.upper_dir = absl::StrCat(dir, "/upper");
  std::vector<std::string> lower_dirs;
  std::string id;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (snapshots_.contains(std::string(key))) {
      return absl::AlreadyExistsError(absl::StrCat("snapshot \"", key, "\": already exists"));
    }
    NA_ASSIGN_OR_RETURN(id, ResolveLocked(image_ref));
  }
  // An image pulled or loaded without unpacking is unpacked by its first container.
  NA_RETURN_IF_ERROR(UnpackMissingLayers(id, what));
  {
    absl::ReaderMutexLock lock(&mu_);
    auto stored = images_.find(id);
    if (stored == images_.end()) {
      return absl::NotFoundError(absl::StrCat(what, ": image ", id, " was removed meanwhile"));
    }
    prepared.image = ToImageLocked(id, stored->second);
    // overlayfs lists the topmost lower layer first.
    for (auto it = prepared.image.layers.rbegin(); it != prepared.image.layers.rend(); ++it) {
      auto layer = layers_.find(*it);
      if (layer == layers_.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat(what, ": layer ", *it, " of image ", id, " is not unpacked"));
      }
      lower_dirs.push_back(absl::StrCat(root_, "/l/", layer->second.link));
    }
  }
  Mount rootfs{
      "overlay",
      "overlay",
      "",
      {absl::StrCat("lowerdir=", absl::StrJoin(lower_dirs, ":")),
       absl::StrCat("upperdir=", prepared.upper_dir), absl::StrCat("workdir=", dir, "/work")}};
  if (lower_dirs.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": image has no layers"));
  }
  size_t options_bytes = absl::StrJoin(rootfs.options, ",").size() + 1;
  if (options_bytes > kMaxMountOptionsBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": image ", prepared.image.id, " has ", lower_dirs.size(),
                     " layers; its overlay mount options need ", options_bytes,
                     " bytes, over the kernel's limit of ", kMaxMountOptionsBytes,
                     " (squash the image or use a shorter --root)"));
  }
  prepared.mounts.push_back(std::move(rootfs));

  NA_ASSIGN_OR_RETURN(std::string work, MakeTempDir(absl::StrCat(root_, "/tmp"), "snapshot-"));
  absl::Cleanup remove_work = [&work] { RemoveTreeOrWarn(work); };
  SnapshotRecord record{prepared.image.id, absl::Now(), owners};
  // The upper directory is the container's "/": 0755 like any root directory.
  NA_RETURN_IF_ERROR(Annotate(linux::MakeDirs(absl::StrCat(work, "/upper"), 0755), what));
  NA_RETURN_IF_ERROR(Annotate(ChangeMode(absl::StrCat(work, "/upper"), 0755), what));
  NA_RETURN_IF_ERROR(Annotate(linux::MakeDirs(absl::StrCat(work, "/work"), 0700), what));
  NA_RETURN_IF_ERROR(Annotate(linux::WriteFileAtomic(absl::StrCat(work, "/", kSnapshotRecordFile),
                                                     SerializeSnapshotRecord(record), 0600),
                              what));

  absl::MutexLock lock(&mu_);
  if (snapshots_.contains(std::string(key))) {
    return absl::AlreadyExistsError(absl::StrCat("snapshot \"", key, "\": already exists"));
  }
  // Removed while its layers were looked up or unpacked: its layers may be gone too. Once the
  // snapshot is registered, removal is refused.
  if (!images_.contains(prepared.image.id)) {
    return absl::NotFoundError(
        absl::StrCat(what, ": image ", prepared.image.id, " was removed meanwhile"));
  }
  absl::Status renamed = RenameNoReplace(work, dir);
  if (absl::IsAlreadyExists(renamed)) {
    return absl::AlreadyExistsError(
        absl::StrCat("snapshot \"", key, "\": already exists (\"", dir, "\")"));
  }
  NA_RETURN_IF_ERROR(Annotate(renamed, what));
  snapshots_[std::string(key)] = std::move(record);
  return prepared;
}

absl::Status ImageStore::RemoveSnapshot(absl::string_view key) {
  NA_RETURN_IF_ERROR(ValidateSnapshotKey(key));
  const std::string what = absl::StrCat("remove snapshot \"", key, "\"");
  const std::string dir = SnapshotDir(key);
  std::string doomed;
  {
    absl::MutexLock lock(&mu_);
    if (!linux::PathExists(dir)) {
      snapshots_.erase(std::string(key));  // Already gone from disk (or never made).
      return absl::OkStatus();
    }
    if (std::optional<std::string> mount = FindOverlayUsing(absl::StrCat(dir, "/upper"))) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": still mounted at \"", *mount, "\"; unmount it first"));
    }
    // Renamed out of snapshots/ at once, so the key is free and a crash while deleting a
    // big upper directory leaves only tmp/ debris.
    NA_ASSIGN_OR_RETURN(doomed, MakeTempDir(absl::StrCat(root_, "/tmp"), "remove-"));
    if (absl::Status s = RenameNoReplace(dir, absl::StrCat(doomed, "/", key)); !s.ok()) {
      linux::RemoveTree(doomed).IgnoreError();  // Empty directory we just made.
      return Annotate(s, what);
    }
    snapshots_.erase(std::string(key));
  }
  return Annotate(linux::RemoveTree(doomed), what);
}

std::vector<Snapshot> ImageStore::ListSnapshots() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Snapshot> snapshots;
  snapshots.reserve(snapshots_.size());
  for (const auto& [key, record] : snapshots_) {
    snapshots.push_back(Snapshot{key, record.image_id, absl::StrCat(SnapshotDir(key), "/upper")});
  }
  return snapshots;
}

}  // namespace nodeagent::image
