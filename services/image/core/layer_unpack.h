#pragma once

// Unpacks a layer tarball into a directory, treating the tarball as hostile.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

struct UnpackedLayer {
  // Lowercase hex sha256 of the uncompressed tar stream: the layer's diff id.
  std::string diff_id_hex;
  // Bytes of the uncompressed tar stream, and how many were read from the source.
  int64_t tar_bytes = 0;
  int64_t input_bytes = 0;
  int64_t entries = 0;
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
absl::StatusOr<UnpackedLayer> UnpackLayer(const ByteSource& source, const std::string& dir);

}  // namespace nodeagent::image
