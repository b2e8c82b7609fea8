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
// Writes `data` to a temporary file beside `path`, fsyncs it and renames it over `path`,
// so readers see the old or the new content and never a half-written file.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, mode_t mode = 0644);
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
