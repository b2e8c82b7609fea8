#pragma once

// The image core's own syscall helpers: the one file in services/image/core that calls the
// kernel directly. Generic wrappers live in services/common/linux; these are the few the
// store needs beyond them. Every error names the operation and the path.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/common/linux/unique_fd.h"

namespace nodeagent::image {

// mkdtemp(<parent>/<prefix>XXXXXX); the directory is created 0700.
absl::StatusOr<std::string> MakeTempDir(const std::string& parent, absl::string_view prefix);

// rename(2) that never replaces: ALREADY_EXISTS when `to` exists.
absl::Status RenameNoReplace(const std::string& from, const std::string& to);

absl::Status ChangeMode(const std::string& path, mode_t mode);

absl::Status CreateSymlink(const std::string& target, const std::string& link_path);
// NOT_FOUND when `path` does not exist; FAILED_PRECONDITION when it is not a symlink.
absl::StatusOr<std::string> ReadSymlink(const std::string& path);

// Canonical absolute path (realpath(3)); `path` must exist.
absl::StatusOr<std::string> CanonicalPath(const std::string& path);

// True when `path` exists and is a directory (symlinks are not followed).
bool IsDirectory(const std::string& path);

// Modification time of `path` (following symlinks).
absl::StatusOr<absl::Time> ModificationTime(const std::string& path);

// Flushes the filesystem holding `path` (syncfs), so what was written below it is durable
// before a rename publishes it.
absl::Status SyncFilesystemOf(const std::string& path);

// Checks that `relative` resolves below `base` without following any symlink
// (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). NOT_FOUND when a component is missing,
// INVALID_ARGUMENT when a component is a symlink or the path leaves `base`.
absl::Status CheckNoSymlinksBeneath(const std::string& base, const std::string& relative);

// An exclusive flock(2) on a file, held for the object's lifetime.
class FileLock {
 public:
  // FAILED_PRECONDITION when another process (or another open of the same file) holds it.
  static absl::StatusOr<FileLock> Acquire(const std::string& path);

 private:
  explicit FileLock(linux::UniqueFd fd) : fd_(std::move(fd)) {}
  linux::UniqueFd fd_;
};

// Runs argv[0] (an absolute path) with stdin from /dev/null and stderr inherited, and returns
// its stdout. posix_spawn rather than fork: the caller may have threads. A non-zero exit or
// death by signal is an error carrying the program's path.
absl::StatusOr<std::string> RunAndCaptureStdout(const std::vector<std::string>& argv);

}  // namespace nodeagent::image
