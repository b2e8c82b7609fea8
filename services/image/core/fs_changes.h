#pragma once

// A container's filesystem as overlayfs layers it: read-only layer directories (lowest
// last) under a writable upper directory, with overlay whiteouts (0:0 character devices) and
// opaque directories (trusted.overlay.opaque=y). Computes what the upper changed (A/C/D),
// writes the upper as an OCI layer tar (whiteouts as ".wh." entries), and writes the merged
// view as one plain tar. Reads the directories directly: nothing is mounted.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/image/core/oci_manifest.h"
#include "services/image/core/store_index.h"

namespace nodeagent::image {

struct FileChange {
  // 'A' added, 'C' changed, 'D' deleted.
  char kind = 'C';
  // Absolute path in the container ("/etc/hosts").
  std::string path;
  bool operator==(const FileChange&) const = default;
};

// Receives consecutive bytes of a tar stream.
using ByteSink = std::function<absl::Status(absl::string_view)>;

// Changes of `upper` over `lowers` (topmost first), sorted by path. A directory that exists
// below and is in the upper is C; below a deleted or opaque directory, every path the lower
// layers had is reported D (as `docker diff` does for the top of a deleted tree only: the
// deleted directory itself is D and its children are not listed).
absl::StatusOr<std::vector<FileChange>> ComputeChanges(const std::string& upper,
                                                       const std::vector<std::string>& lowers);

// Writes `upper` as an OCI layer tar: files as they are, each whiteout as an empty
// ".wh.<name>", each opaque directory followed by "<dir>/.wh..wh..opq". Entries are sorted
// and carry numeric owners only; overlay's own xattrs are left out.
// `owners`: the upper belongs to a user namespace container (its files' owners are mapped
// back to the container's ids).
absl::Status WriteLayerTar(const std::string& upper, LayerCompression compression,
                           const ByteSink& sink, const OwnerMap& owners = {});

// Writes the merged view of `dirs` (topmost first: upper, then the image's layers) as one
// plain tar with no whiteouts.
// `upper_owners` maps the owners of the files that come from dirs[0], as for WriteLayerTar.
absl::Status WriteMergedTar(const std::vector<std::string>& dirs, const ByteSink& sink,
                            const OwnerMap& upper_owners = {});

}  // namespace nodeagent::image
