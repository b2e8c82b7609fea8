#include "services/runtime/linux/exec_lookup.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace nodeagent::runtime {
namespace {

// 0 when `path` is a file that may be executed, else the errno execve would give.
int CheckExecutable(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno;
  // execve checks the mode bits even for root: a regular file needs one x bit.
  if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) return EACCES;
  return 0;
}

}  // namespace

std::string PathFromEnv(const std::vector<std::string>& env) {
  const std::string* found = nullptr;
  for (const std::string& entry : env) {
    if (absl::StartsWith(entry, "PATH=")) found = &entry;
  }
  return found != nullptr ? found->substr(5) : kDefaultPath;
}

absl::Status ExecErrorStatus(const std::string& file, int err) {
  std::string message = absl::StrCat("exec \"", file, "\": ");
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(absl::StrCat(message, "no such file or directory"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat(message, "permission denied"));
    default:
      // ENOEXEC, ETXTBSY, ELOOP, ...: the file is there but cannot run.
      return absl::FailedPreconditionError(absl::StrCat(message, std::strerror(err)));
  }
}

bool IsExecError(const absl::Status& status) {
  return !status.ok() && absl::StartsWith(status.message(), "exec \"");
}

int StartErrorExitCode(const absl::Status& status) {
  if (!IsExecError(status)) return 125;
  return absl::IsNotFound(status) ? 127 : 126;
}

absl::StatusOr<std::string> LookPath(const std::string& file, absl::string_view path) {
  if (file.empty()) return absl::InvalidArgumentError("exec \"\": empty command name");
  if (file.find('/') != std::string::npos) {
    if (int err = CheckExecutable(file); err != 0) return ExecErrorStatus(file, err);
    return file;
  }
  // Like Go's exec.LookPath (and so Docker), a match that cannot be executed is skipped and,
  // if nothing else matches, reported as not found.
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", file);
    if (CheckExecutable(candidate) == 0) return candidate;
  }
  return absl::NotFoundError(
      absl::StrCat("exec \"", file, "\": executable file not found in $PATH"));
}

}  // namespace nodeagent::runtime
