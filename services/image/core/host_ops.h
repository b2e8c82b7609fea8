#pragma once

// The image core's own syscall helpers: the one file in services/image/core that calls the
// kernel directly. Generic wrappers live in services/common/linux; these are the few the
// store needs beyond them. Every error names the operation and the path.

#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/common/linux/unique_fd.h"
#include "services/image/core/types.h"

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

// What DirectoryBeneath found at a path below a directory fd.
enum class BeneathKind {
  kDirectory,      // A real directory, reached without any symlink.
  kMissing,        // A component is missing; those before it are real directories.
  kNotADirectory,  // A component (perhaps the last) is not a directory, or is a symlink.
};
// Resolves `relative` below the directory `base_fd` without following any symlink
// (openat2 O_DIRECTORY, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). INVALID_ARGUMENT when a
// component before the last is a symlink or the path leaves the directory.
absl::StatusOr<BeneathKind> DirectoryBeneath(int base_fd, const std::string& relative);

// unlink(2) of a non-directory (a symlink itself, never its target).
absl::Status UnlinkNoFollow(const std::string& path);

// overlayfs's mark of a directory that hides the layers below it.
inline constexpr absl::string_view kOverlayOpaqueXattr = "trusted.overlay.opaque";

// lsetxattr(2) / lgetxattr(2). GetXattr: NOT_FOUND when the attribute is not set.
absl::Status SetXattrNoFollow(const std::string& path, const std::string& name,
                              absl::string_view value);
absl::StatusOr<std::string> GetXattrNoFollow(const std::string& path, const std::string& name);

// What lstat(2) says about a path, as far as layer walks need it.
struct PathInfo {
  mode_t mode = 0;  // Type and permission bits.
  dev_t rdev = 0;
  int64_t size = 0;
  // Which file it is (device and inode) and how many names it has.
  dev_t dev = 0;
  ino_t ino = 0;
  nlink_t links = 0;
  bool IsDir() const { return S_ISDIR(mode); }
  // An overlayfs whiteout: a 0:0 character device.
  bool IsWhiteout() const { return S_ISCHR(mode) && rdev == 0; }
};
// NOT_FOUND when `path` does not exist.
absl::StatusOr<PathInfo> LStat(const std::string& path);

// What fstat(2) says about an open file.
absl::StatusOr<PathInfo> StatFd(int fd);

// pread(2) of up to `size` bytes at `offset` (fewer at the end of the file; 0 there).
absl::StatusOr<size_t> ReadAt(int fd, char* buffer, size_t size, int64_t offset);

// Starts writing the dirty pages of a file range to disk, without waiting for it
// (sync_file_range SYNC_FILE_RANGE_WRITE; length 0: to the end). Best effort: the syncfs that
// publishes a layer is what makes it durable; this only lets the disk work while the CPU
// still unpacks, so that syncfs has little left to wait for.
void StartWriteback(int fd, int64_t offset, int64_t length);

// A ByteSource over a file's bytes, read in chunks of `chunk_size`.
absl::StatusOr<ByteSource> OpenFileSource(const std::string& path, size_t chunk_size = 1 << 20);

// Removes scratch work (a directory or file below the store's tmp/); a failure is only
// logged: whatever is left is removed with tmp/ at the next start.
void RemoveTreeOrWarn(const std::string& path);

// True when this process runs with euid 0.
bool RunningAsRoot();

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
