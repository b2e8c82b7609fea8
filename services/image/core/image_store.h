#pragma once

// The image store: images, their unpacked layers, and container snapshots, under one root.
//
//   <root>/images.json           index: images (names, created, layers, size) and layers
//   <root>/blobs/sha256/<hex>    content store: manifests, configs and layer blobs (as
//                                pulled or imported: gzip, zstd or plain tar), each
//                                verified against its sha256 before it appears; the image
//                                id is its config's digest
//   <root>/layers/<hex>/         a layer unpacked, keyed by diff id, shared by every image;
//                                absent until first use for an image imported without
//                                unpacking (ImageImportSpec::unpack), whose blob is kept
//   <root>/l/<link> -> ../layers/<hex>   short names that keep overlay's lowerdir short
//   <root>/snapshots/<key>/      {upper,work}/ and snapshot.json for one container's rootfs
//   <root>/tmp/                  work in progress; emptied at start
//   <root>/lock                  flock: one process per store
//
// Everything appears atomically: layers and snapshots are built under tmp/ and renamed into
// place, metadata files are written to a temp file and renamed. A crash leaves only tmp/
// debris, which Open() removes. The store is thread-safe.

#include <functional>
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
#include "services/image/core/fs_changes.h"
#include "services/image/core/host_ops.h"
#include "services/image/core/layer_unpack.h"
#include "services/image/core/oci_config.h"
#include "services/image/core/oci_manifest.h"
#include "services/image/core/store_index.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

class PreparedLayer;
class LayerPrefetcher;

inline constexpr absl::string_view kDefaultImageRoot = "/var/lib/nodeagent/image";

struct ImageStoreOptions {
  std::string root = std::string(kDefaultImageRoot);
  // Upper bound of one layer's uncompressed tar (hostile "zip bombs"); 0: none.
  int64_t max_layer_bytes = int64_t{64} << 30;
};

// Progress of one blob of a long operation (pull, push, load).
struct BlobProgress {
  std::string digest;  // May be empty until known.
  int64_t done_bytes = 0;
  int64_t total_bytes = 0;  // 0 when unknown.
  // "downloading", "unpacking", "exists", "done", "uploading", "pushed".
  std::string action;
};
using ProgressFn = std::function<void(const BlobProgress&)>;

// One layer of an image being imported: its descriptor in the manifest (digest and media
// type may be empty when the source does not say) and how to read its blob.
struct LayerSourceSpec {
  Descriptor descriptor;
  std::function<absl::StatusOr<ByteSource>()> open;
  // When set: the blob is this file, below the store's tmp/, and is moved into the store
  // once verified rather than copied (archives extracted by LoadArchive).
  std::string adopt_path;
  // When set: the blob unpacked already (while its archive streamed in); used instead of
  // unpacking `open` again when its digests are the ones expected.
  std::shared_ptr<PreparedLayer> prepared;
};

// An image to import from its parts.
struct ImageImportSpec {
  // "repository:tag" names to give it.
  std::vector<std::string> names;
  // The config blob, byte for byte (its sha256 is the image id).
  std::string config_bytes;
  // The manifest as received, kept byte for byte so its digest stays the source's; empty:
  // the store writes an OCI manifest from the layers.
  std::string manifest_bytes;
  std::vector<LayerSourceSpec> layers;
  // false: keep only the layers' blobs, verified against their digests (like `skopeo copy`
  // or containerd's fetch), and unpack them on first use (PrepareSnapshot, UnpackImage),
  // which then checks the diff ids. A plain tar blob is checked against its diff id at once
  // (it is its own digest). Layers unpacked already are used as they are.
  bool unpack = true;
};

struct StoredManifest {
  std::string digest;
  std::string bytes;
  OciManifest manifest;
  std::string config_bytes;
};

struct RemovedImages {
  std::vector<std::string> untagged;
  std::vector<std::string> deleted;  // Image ids, then layer diff ids and blob digests.
};

struct PruneReport {
  std::vector<std::string> deleted;
  int64_t reclaimed_bytes = 0;
};

struct HistoryItem {
  std::string layer;  // Diff id; empty for entries that made no layer.
  absl::Time created = absl::UnixEpoch();
  std::string created_by;
  std::string comment;
  int64_t size_bytes = 0;
};

struct DiskUsageReport {
  int64_t images = 0;
  int64_t images_in_use = 0;
  int64_t layers = 0;
  int64_t layer_bytes = 0;
  // Layers no image in use by a snapshot needs.
  int64_t layer_bytes_reclaimable = 0;
  int64_t blobs = 0;
  int64_t blob_bytes = 0;
  int64_t blob_bytes_reclaimable = 0;
  struct SnapshotUsage {
    std::string key;
    std::string image_id;
    int64_t upper_bytes = 0;
  };
  std::vector<SnapshotUsage> snapshots;
};

struct CommitOptions {
  std::string comment;
  std::string created_by = "nodectl commit";
  // Replaces the parent's run config when set.
  std::optional<ImageConfig> config;
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

  // Imports an image from its parts: every blob is verified against its digest (the config
  // against the manifest, each layer's blob against its descriptor and its uncompressed tar
  // against the config's diff id). Layers already stored are not read again. On any error
  // nothing new is kept.
  absl::StatusOr<Image> ImportImage(const ImageImportSpec& spec, const ProgressFn& progress = {});

  // Loads every image of an OCI archive (tar of an OCI image layout) or a `docker save`
  // archive, streamed from `source` (plain or compressed).
  // `unpack` false keeps the layers as blobs only (see ImageImportSpec::unpack).
  absl::StatusOr<std::vector<Image>> LoadArchive(const ByteSource& source, bool unpack = true);
  // Loads every image of an OCI image layout directory or an unpacked docker-save archive.
  absl::StatusOr<std::vector<Image>> LoadDirectory(const std::string& dir, bool unpack = true);
  // Writes `refs` as one OCI archive (with a docker-save manifest.json too) to `sink`.
  absl::Status SaveArchive(const std::vector<std::string>& refs, const ByteSink& sink);

  // Unpacks the layers of an image stored without them (ImageImportSpec::unpack false), in
  // parallel; a no-op for an unpacked image. A layer whose blob does not unpack (hostile
  // entries, bad compression, a diff id other than the config's) is FAILED_PRECONDITION
  // naming it; nothing of it is kept and the image stays as it was.
  absl::StatusOr<Image> UnpackImage(absl::string_view ref);

  // The stored manifest of an image and its config.
  absl::StatusOr<StoredManifest> GetManifest(absl::string_view ref) const;
  // Host path of a stored blob; NOT_FOUND when the store does not have it.
  absl::StatusOr<std::string> BlobPath(absl::string_view digest) const;

  // Adds the name `target` to the image `source` (moving it from another image).
  absl::StatusOr<Image> TagImage(absl::string_view source, absl::string_view target);
  // Removes a name, or the image when `ref` is an id or its last name. Refused
  // (FAILED_PRECONDITION) while a snapshot uses the image, unless `force`, which then only
  // removes its names; the image goes with the last snapshot, by prune.
  absl::StatusOr<RemovedImages> RemoveImage(absl::string_view ref, bool force);
  // Removes unnamed images no snapshot uses (every unused image with `all`), then every
  // layer and blob no remaining image refers to.
  absl::StatusOr<PruneReport> Prune(bool all);
  // An image's history, newest first, with each layer's size.
  absl::StatusOr<std::vector<HistoryItem>> History(absl::string_view ref) const;
  // Space used: images, layers, blobs and each snapshot's upper directory.
  absl::StatusOr<DiskUsageReport> DiskUsage() const;

  // A snapshot's changes against its image (A/C/D), by path.
  absl::StatusOr<std::vector<FileChange>> DiffSnapshot(absl::string_view key) const;
  // Adds a snapshot's changes as a new layer over its image: a new image named `name`.
  absl::StatusOr<Image> CommitSnapshot(absl::string_view key, absl::string_view name,
                                       const CommitOptions& options);
  // Writes a snapshot's whole filesystem (image layers and upper merged) as a plain tar.
  absl::Status ExportSnapshot(absl::string_view key, const ByteSink& sink) const;

  // Creates snapshot `key` over image `image_ref`: an empty upper and work directory, and the
  // overlay mount that gives the container's rootfs. INVALID_ARGUMENT for a bad key,
  // ALREADY_EXISTS for a used key, NOT_FOUND for an unknown image; nothing is created then.
  // `owners`: the container runs in a user namespace (SnapshotRecord::owners).
  absl::StatusOr<PreparedSnapshot> PrepareSnapshot(absl::string_view key,
                                                   absl::string_view image_ref,
                                                   const OwnerMap& owners = {});
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
    OciImageConfig oci;
    // Parsed record.manifest; nullopt for images stored before manifests were kept.
    std::optional<OciManifest> manifest;
  };

  // A layer stored by StoreLayer (unpacked) or StoreLayerBlob (record empty: only its blob).
  struct StoredLayer {
    std::string diff_id;
    Descriptor blob;
    std::optional<LayerRecord> record;
  };

  ImageStore(std::string root, FileLock lock, int64_t max_layer_bytes);

  // Unpacks a layer blob into layers/, keeping the blob in blobs/. `expected` (digest and
  // media type, each optional) and `expected_diff_id` are checked; nothing is kept on error.
  absl::StatusOr<StoredLayer> StoreLayer(const ByteSource& source, const Descriptor& expected,
                                         absl::string_view expected_diff_id,
                                         const ProgressFn& progress,
                                         const std::string& adopt_path = "");
  // StoreLayer for a layer unpacked ahead (see LayerSourceSpec::prepared), claimed by the
  // caller: the same checks, then its directory and the blob at `adopt_path` are published.
  absl::StatusOr<StoredLayer> StorePreparedLayer(const PreparedLayer& prepared,
                                                 const Descriptor& expected,
                                                 absl::string_view expected_diff_id,
                                                 const ProgressFn& progress,
                                                 const std::string& adopt_path);
  // Keeps a layer's blob only (ImageImportSpec::unpack false): verified against `expected`
  // (digest, size) and, for a plain tar, against `expected_diff_id`. A blob in a compression
  // OCI has no media type for (bzip2, xz) is unpacked with StoreLayer instead.
  absl::StatusOr<StoredLayer> StoreLayerBlob(const ByteSource& source, const Descriptor& expected,
                                             absl::string_view expected_diff_id,
                                             const ProgressFn& progress,
                                             const std::string& adopt_path);
  // Unpacks a stored blob as layer `diff_id` (checked unless the blob is the tar itself,
  // verified when it was stored) and publishes the layer directory; the index is the
  // caller's to update.
  absl::StatusOr<LayerRecord> UnpackStoredLayer(const std::string& diff_id, const Descriptor& blob);
  // Unpacks the layers of image `id` that are only blobs; `what` prefixes errors.
  absl::Status UnpackMissingLayers(const std::string& id, absl::string_view what);
  // A fresh directory below tmp/ to unpack a layer into (mode 0755), and how to unpack one.
  absl::StatusOr<std::string> MakeLayerWorkDir() const;
  UnpackOptions LayerUnpackOptions() const;
  // Syncs and publishes an unpacked layer directory `work` (below tmp/) as layer `hex`.
  absl::StatusOr<LayerRecord> FinishLayer(const std::string& work, const std::string& hex);
  // Writes a blob held in memory, verified against `expected` when set.
  absl::StatusOr<std::string> WriteBlob(absl::string_view bytes, absl::string_view expected);
  // Records an image whose layers are stored: config and manifest blobs, names, index.
  absl::StatusOr<Image> PublishImage(const std::vector<std::string>& names,
                                     const std::string& config_bytes,
                                     const std::string& manifest_bytes,
                                     const std::vector<StoredLayer>& layers,
                                     absl::string_view what);
  // Removes layers and blobs among the candidates that no image refers to.
  void RemoveUnreferencedLocked(const std::set<std::string>& layer_candidates,
                                const std::set<std::string>& blob_candidates, PruneReport* report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::set<std::string> ReferencedBlobsLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Upper and lower directories (topmost first) of a snapshot, and how its upper's owners map
  // back to the container's ids.
  absl::Status SnapshotDirs(absl::string_view key, std::string* upper,
                            std::vector<std::string>* lowers, std::string* image_id,
                            OwnerMap* owners = nullptr) const;
  // `adopt`: the directory is the store's own scratch space, its blobs may be moved in.
  // `prefetch`: layers of the archive extracted to `dir` already unpacked, or null.
  absl::StatusOr<std::vector<Image>> LoadDirectoryImpl(const std::string& dir, bool adopt,
                                                       bool unpack, LayerPrefetcher* prefetch);
  absl::StatusOr<std::vector<Image>> LoadOciLayout(const std::string& dir, bool adopt, bool unpack,
                                                   LayerPrefetcher* prefetch);
  absl::StatusOr<std::vector<Image>> LoadDockerSave(const std::string& dir, bool adopt, bool unpack,
                                                    LayerPrefetcher* prefetch);
  std::string BlobFile(absl::string_view digest) const;

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
  // Bytes an image's layers take (unpacked, or the blob of one not unpacked yet), counting
  // a layer used twice once, and whether every layer is unpacked.
  struct ImageBytes {
    int64_t bytes = 0;
    bool unpacked = true;
  };
  static ImageBytes StoredBytes(const std::vector<std::string>& diff_ids,
                                const OciManifest* manifest,
                                const std::map<std::string, LayerRecord>& layers);
  // The blob of an image's layer i; null for an image stored before manifests were kept.
  static const Descriptor* LayerBlob(const OciManifest* manifest, size_t i);
  // Layer i (`diff_id`) is unpacked, or its blob is stored to be unpacked on first use.
  bool LayerStored(const std::map<std::string, LayerRecord>& layers, const std::string& diff_id,
                   const OciManifest* manifest, size_t i) const;
  absl::StatusOr<std::string> ResolveLocked(absl::string_view ref) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Image ToImageLocked(const std::string& id, const StoredImage& stored) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const std::string root_;
  const FileLock lock_;
  const int64_t max_layer_bytes_;

  // Held shared by every import for its whole length and exclusively by garbage
  // collection, so that GC never removes a blob or layer an import just wrote. Taken before mu_.
  mutable absl::Mutex gc_mu_;
  // Held by UnpackMissingLayers: one image's layers unpack at a time, so concurrent first
  // containers of an image unpack it once. (An unpacking import of the same layer may still
  // overlap; CommitLayer then keeps one copy.) Taken after gc_mu_, before mu_.
  absl::Mutex unpack_mu_ ABSL_ACQUIRED_AFTER(gc_mu_) ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::map<std::string, StoredImage> images_ ABSL_GUARDED_BY(mu_);
  // "repository:tag" -> image id.
  std::map<std::string, std::string> names_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LayerRecord> layers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SnapshotRecord> snapshots_ ABSL_GUARDED_BY(mu_);
  // Diff ids and blob digests that imports in progress may write (one entry per import).
  std::multiset<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeagent::image
