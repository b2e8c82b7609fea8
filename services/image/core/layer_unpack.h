#pragma once

// Unpacks a layer tarball into a directory, treating the tarball as hostile.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/image/core/oci_manifest.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

struct UnpackedLayer {
  // Lowercase hex sha256 of the uncompressed tar stream: the layer's diff id.
  std::string diff_id_hex;
  // Bytes of the uncompressed tar stream, and how many were read from the source.
  int64_t tar_bytes = 0;
  int64_t input_bytes = 0;
  int64_t entries = 0;
  // What UnpackOptions::blob_sink received: the input as it came (plain, gzip or zstd), or
  // the decompressed tar (kNone) when the input used a compression OCI has no type for.
  LayerCompression blob_compression = LayerCompression::kNone;
  // The input went through a decompressor (gzip, zstd, bzip2, xz, ...): it is not the tar.
  bool input_compressed = false;
  // With UnpackOptions::hash_input: lowercase hex sha256 of what blob_sink received (the
  // blob's digest). For a blob that is the tar itself this is the diff id, hashed once.
  std::string blob_digest_hex;
};

// An entry being extracted, as UnpackOptions::on_entry_start sees it.
struct ExtractedEntry {
  // Sanitized path below the layer root, and the host path it was written to.
  std::string relative;
  std::string host_path;
  // AE_IFREG, AE_IFDIR, ... (libarchive's file type bits).
  unsigned int type = 0;
  bool hardlink = false;
  // Bytes of data the entry carries (0 for links and directories).
  int64_t size = 0;
};

struct UnpackOptions {
  // OCI whiteouts become overlayfs ones: ".wh.NAME" a 0:0 character device NAME, and
  // ".wh..wh..opq" the trusted.overlay.opaque xattr on its directory. Off: extracted as files.
  bool convert_whiteouts = true;
  // Character and block devices need CAP_MKNOD and are refused unless allowed.
  bool allow_device_nodes = false;
  // Upper bound of the uncompressed tar stream (RESOURCE_EXHAUSTED past it); 0: none.
  int64_t max_tar_bytes = 0;
  // Hash the uncompressed stream (the diff id); off when nobody needs it (an archive that
  // is only a container of files).
  bool compute_diff_id = true;
  // Also hash what blob_sink receives (UnpackedLayer::blob_digest_hex).
  bool hash_input = false;
  // Receives the layer's bytes as a blob store keeps them (see blob_compression).
  std::function<absl::Status(absl::string_view)> blob_sink;
  // Called, at most once and before any tar bytes reach blob_sink, when the sink must drop
  // what it got so far (the input) and take the decompressed tar instead.
  std::function<absl::Status()> blob_reset;
  // Starts the disk writes of big files while unpacking (see StartWriteback), so that the
  // sync before a layer is published has little left to wait for. Measured: it shortens a
  // load (the archive's blobs and the layers are both written) but slowed a pull down, so
  // only LoadArchive asks for it.
  bool start_writeback = false;
  // Watchers of the extraction (LoadArchive unpacks the layers of an archive while it still
  // streams in): told when an entry's file exists (before its data), how many bytes of it
  // are on disk after each block, and when the entry is complete.
  std::function<void(const ExtractedEntry&)> on_entry_start;
  std::function<void(int64_t written)> on_entry_data;
  std::function<void()> on_entry_end;
};

// Makes a tar entry path relative to the layer root: leading '/' and "." components are
// dropped (like GNU tar), ".." anywhere is refused (INVALID_ARGUMENT naming the entry).
// "" is the layer root itself.
absl::StatusOr<std::string> SanitizeEntryPath(absl::string_view path);

// Streams a tar (uncompressed, gzip, bzip2, xz or zstd) from `source` into `dir`, an existing
// empty directory that nobody else writes to. Owners, modes, times and xattrs are restored
// (numeric ids, never looked up on the host). No entry lands outside `dir`: paths are
// sanitized, nothing is extracted through a symlink, hardlink targets stay inside.
// A malformed or hostile archive is INVALID_ARGUMENT naming the entry; the caller removes
// `dir` on any error. Never changes the process's working directory.
absl::StatusOr<UnpackedLayer> UnpackLayer(const ByteSource& source, const std::string& dir,
                                          const UnpackOptions& options = {});

// The compression a layer's first bytes show (gzip or zstd magic, else none).
LayerCompression SniffCompression(absl::string_view head);

}  // namespace nodeagent::image
