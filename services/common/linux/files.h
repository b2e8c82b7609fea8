#pragma once

// File and directory helpers: errors name the path and the operation.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/common/linux/unique_fd.h"

namespace nodeagent::linux {

absl::StatusOr<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0);
absl::StatusOr<std::string> ReadFile(const std::string& path);
// What an atomic write must survive. Either way readers see the old or the new content and
// never a half-written file; only kHostCrash pays an fsync (0.3-5 ms) to also keep it through
// a power loss, which state that dies with the host's processes (a running container's
// record) does not need.
enum class Durability { kHostCrash, kServiceCrash };
// Writes `data` to a temporary file beside `path` and renames it over `path`.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, mode_t mode = 0644,
                             Durability durability = Durability::kHostCrash);
absl::Status WriteAll(int fd, absl::string_view data);
// mkdir -p.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);
// rm -rf that never crosses into another filesystem (a forgotten mount below `path` is an
// error, not something to empty). Missing `path` is not an error.
absl::Status RemoveTree(const std::string& path);
bool PathExists(const std::string& path);
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path);
// Bytes used on disk by the files below `path` (hard links counted once).
absl::StatusOr<int64_t> DiskUsage(const std::string& path);

}  // namespace nodeagent::linux
