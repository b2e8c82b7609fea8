#pragma once

// Finding the container's command the way Docker does (runc's exec.LookPath): a name without
// '/' is searched in the PATH of the container's environment, else in kDefaultPath. Errors
// are the ones users know from Docker, and their codes pick the exit status the runtime
// reports: NOT_FOUND -> 127, PERMISSION_DENIED (and other exec failures) -> 126.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The value of PATH in `env` (KEY=VALUE entries; the last one wins), or kDefaultPath.
std::string PathFromEnv(const std::vector<std::string>& env);

// The file to execve for `file`, resolved against `path` (':'-separated; an empty entry is
// the current directory) in the current root:
//   NOT_FOUND          exec "nosuch": executable file not found in $PATH
//   PERMISSION_DENIED  exec "/etc/passwd": permission denied
absl::StatusOr<std::string> LookPath(const std::string& file, absl::string_view path);

// Status for a failed execve(`file`) with `err`, in the same wording.
absl::Status ExecErrorStatus(const std::string& file, int err);

// Whether `status` is one of the errors above (its message starts with `exec "`), as opposed
// to a failure while setting the container up.
bool IsExecError(const absl::Status& status);

// The exit status for a container whose command never started, with Docker's meaning:
// 127 command not found (an exec error with NOT_FOUND), 126 found but cannot be executed
// (any other exec error), 125 the runtime failed before getting that far.
int StartErrorExitCode(const absl::Status& status);

}  // namespace nodeagent::runtime
