#pragma once

// The image store: images, their unpacked layers, and container snapshots, under one root.
//
//   <root>/images.json           index: images (names, created, layers, size) and layers
//   <root>/blobs/sha256/<hex>    OCI image config JSON; the image id is its sha256
//   <root>/layers/<hex>/         a layer unpacked, keyed by diff id, shared by every image
//   <root>/l/<link> -> ../layers/<hex>   short names that keep overlay's lowerdir short
//   <root>/snapshots/<key>/      {upper,work}/ and snapshot.json for one container's rootfs
//   <root>/tmp/                  work in progress; emptied at start
//   <root>/lock                  flock: one process per store
//
// Everything appears atomically: layers and snapshots are built under tmp/ and renamed into
// place, metadata files are written to a temp file and renamed. A crash leaves only tmp/
// debris, which Open() removes. The store is thread-safe.

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/image/core/host_ops.h"
#include "services/image/core/oci_config.h"
#include "services/image/core/store_index.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

inline constexpr absl::string_view kDefaultImageRoot = "/var/lib/nodeagent/image";

struct ImageStoreOptions {
  std::string root = std::string(kDefaultImageRoot);
};

// Optional details of an import.
struct ImportOptions {
  // Creation time recorded in the image config; now when unset. Fixed for reproducible ids.
  std::optional<absl::Time> created;
  // History entry of the layer ("what made it").
  std::string created_by = "nodeagent import";
  std::string comment;
};

class ImageStore {
 public:
  // Opens (creating if needed) the store at options.root: takes the store lock, removes
  // leftovers of interrupted work and loads the index. Reads no layer content, so it is fast
  // for a store of any size.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(const ImageStoreOptions& options);

  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;
  ~ImageStore();

  // Every image, newest first.
  std::vector<Image> ListImages() const;
  // `ref`: name, name:tag, "sha256:<hex>" or a unique id prefix (>= 4 hex digits).
  absl::StatusOr<Image> GetImage(absl::string_view ref) const;

  // Imports a plain rootfs tarball (uncompressed, gzip, bzip2, xz or zstd) read from `source`
  // as a one-layer image called `name` ("name" means "name:latest"; empty leaves it unnamed).
  // A name already on another image moves to the new one. Identical content reuses the
  // stored layer. On any error nothing is kept.
  absl::StatusOr<Image> ImportRootfsTar(absl::string_view name, const ImageConfig& config,
                                        const ByteSource& source,
                                        const ImportOptions& options = {});

  // Creates snapshot `key` over image `image_ref`: an empty upper and work directory, and the
  // overlay mount that gives the container's rootfs. INVALID_ARGUMENT for a bad key,
  // ALREADY_EXISTS for a used key, NOT_FOUND for an unknown image; nothing is created then.
  absl::StatusOr<PreparedSnapshot> PrepareSnapshot(absl::string_view key,
                                                   absl::string_view image_ref);
  // Removes a snapshot and its upper directory. A missing snapshot is not an error. The
  // caller must have unmounted the snapshot's overlay first.
  absl::Status RemoveSnapshot(absl::string_view key);
  // Every snapshot, by key.
  std::vector<Snapshot> ListSnapshots() const;

  const std::string& root() const { return root_; }
  std::string LayerDir(absl::string_view diff_id) const;
  std::string SnapshotDir(absl::string_view key) const;

 private:
  struct StoredImage {
    ImageRecord record;
    ImageConfig config;
  };

  ImageStore(std::string root, FileLock lock);

  absl::Status Load();
  absl::Status CleanTmp();
  absl::Status LoadSnapshots();
  // Makes sure <root>/l/<link> points at the layer.
  absl::Status EnsureLayerLink(const std::string& hex, const std::string& link) const;
  // Publishes an unpacked layer directory as layers/<hex> (or reuses an existing one).
  absl::StatusOr<LayerRecord> CommitLayer(const std::string& unpacked_dir, const std::string& hex,
                                          int64_t size_bytes);
  // Stores the config blob; returns the image id.
  absl::StatusOr<std::string> WriteConfigBlob(const OciImageConfig& config);
  absl::Status WriteIndexLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> ResolveLocked(absl::string_view ref) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Image ToImageLocked(const std::string& id, const StoredImage& stored) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const std::string root_;
  const FileLock lock_;

  mutable absl::Mutex mu_;
  std::map<std::string, StoredImage> images_ ABSL_GUARDED_BY(mu_);
  // "repository:tag" -> image id.
  std::map<std::string, std::string> names_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LayerRecord> layers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SnapshotRecord> snapshots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeagent::image
