#pragma once

// What the v1 and v2 drivers share: name and limit checks, and file operations on cgroupfs. Errors
// name the file and, for writes, the data:
//   write "/sys/fs/cgroup/memory/nodeagent/c1/memory.limit_in_bytes" = "-5": Invalid argument

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/runtime/linux/cgroup_driver.h"

namespace nodeagent::runtime {

// How long Destroy waits for a cgroup's processes to die and its directories to go.
inline constexpr absl::Duration kCgroupDestroyTimeout = absl::Seconds(2);

// A container id used as a cgroup directory name: [A-Za-z0-9_.-]{1,128}, not "." or "..".
absl::Status ValidateCgroupName(absl::string_view name);
// The parent below a hierarchy root: names as above joined by '/', no leading or trailing '/'.
absl::Status ValidateCgroupParent(absl::string_view parent);

// Limits the kernel would misread rather than reject: negative values (v1 takes -1 as "no
// limit") or a period without a quota. INVALID_ARGUMENT naming the field.
absl::Status ValidateCgroupLimits(const CgroupLimits& limits);

absl::StatusOr<std::string> ReadCgroupFile(const std::string& dir, absl::string_view file);
// One write(2) of `data`: cgroup files act on each write, so data is never split.
absl::Status WriteCgroupFile(const std::string& dir, absl::string_view file,
                             absl::string_view data);
bool CgroupFileExists(const std::string& dir, absl::string_view file);

// mkdir(path, 0755): true if made, false if it was there.
absl::StatusOr<bool> MakeCgroupDir(const std::string& path);

// rename(2) of a cgroup directory within its parent (v1 only); ALREADY_EXISTS if `to` is there.
absl::Status RenameCgroupDir(const std::string& from, const std::string& to);

// Polls `file` in `dir` until it contains `wanted` (a line, or a substring of one), for state
// files the kernel updates asynchronously (freezer.state, cgroup.events).
absl::Status WaitForCgroupFile(const std::string& dir, absl::string_view file,
                               absl::string_view wanted, absl::Duration timeout);

// Names of the cgroups directly below `dir`.
absl::StatusOr<std::vector<std::string>> ListChildCgroups(const std::string& dir);

// Pids in the cgroup at `dir` and every cgroup below it; none if `dir` is missing.
absl::StatusOr<std::vector<pid_t>> CgroupTreeProcs(const std::string& dir);

// SIGKILLs whatever runs in the trees at `dirs` until they are empty, then removes them
// (deepest first). Missing directories are fine. DEADLINE_EXCEEDED after `timeout`, naming
// what was left.
absl::Status KillAndRemoveCgroups(const std::vector<std::string>& dirs, absl::Duration timeout);

}  // namespace nodeagent::runtime
