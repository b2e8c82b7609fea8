#include "services/image/core/host_ops.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

extern char** environ;

namespace nodeagent::image {

using linux::LastErrnoStatus;
using linux::UniqueFd;

absl::StatusOr<std::string> MakeTempDir(const std::string& parent, absl::string_view prefix) {
  std::string path = absl::StrCat(parent, "/", prefix, "XXXXXX");
  if (::mkdtemp(path.data()) == nullptr) {
    return LastErrnoStatus(absl::StrCat("mkdtemp \"", path, "\""));
  }
  return path;
}

absl::Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    std::string what = absl::StrCat("rename \"", from, "\" -> \"", to, "\"");
    if (err == EEXIST) return absl::AlreadyExistsError(absl::StrCat(what, ": already exists"));
    return linux::ErrnoStatus(err, what);
  }
  return absl::OkStatus();
}

absl::Status ChangeMode(const std::string& path, mode_t mode) {
  if (::chmod(path.c_str(), mode) != 0) {
    return LastErrnoStatus(absl::StrFormat("chmod \"%s\" %04o", path, mode));
  }
  return absl::OkStatus();
}

absl::Status CreateSymlink(const std::string& target, const std::string& link_path) {
  if (::symlink(target.c_str(), link_path.c_str()) != 0) {
    return LastErrnoStatus(absl::StrCat("symlink \"", link_path, "\" -> \"", target, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSymlink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0) {
    if (errno == EINVAL) {
      return absl::FailedPreconditionError(absl::StrCat("\"", path, "\" is not a symlink"));
    }
    return LastErrnoStatus(absl::StrCat("readlink \"", path, "\""));
  }
  return std::string(buf, static_cast<size_t>(n));
}

absl::StatusOr<std::string> CanonicalPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    return LastErrnoStatus(absl::StrCat("realpath \"", path, "\""));
  }
  return std::string(buf);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<absl::Time> ModificationTime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return LastErrnoStatus(absl::StrCat("stat \"", path, "\""));
  return absl::TimeFromTimespec(st.st_mtim);
}

absl::Status SyncFilesystemOf(const std::string& path) {
  absl::StatusOr<UniqueFd> fd = linux::OpenFile(path, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  if (::syncfs(fd->get()) != 0) return LastErrnoStatus(absl::StrCat("syncfs \"", path, "\""));
  return absl::OkStatus();
}

absl::Status CheckNoSymlinksBeneath(const std::string& base, const std::string& relative) {
  absl::StatusOr<UniqueFd> base_fd = linux::OpenFile(base, O_PATH | O_DIRECTORY);
  if (!base_fd.ok()) return base_fd.status();
  struct open_how how = {};
  how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  // glibc 2.36 has no openat2 wrapper.
  long fd = ::syscall(SYS_openat2, base_fd->get(), relative.c_str(), &how, sizeof(how));
  if (fd < 0) {
    int err = errno;
    std::string what = absl::StrCat("\"", relative, "\" below \"", base, "\"");
    if (err == ELOOP || err == EXDEV) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": resolves through a symlink or out of the directory"));
    }
    return linux::ErrnoStatus(err, absl::StrCat("open ", what));
  }
  UniqueFd closer(static_cast<int>(fd));
  return absl::OkStatus();
}

absl::StatusOr<BeneathKind> DirectoryBeneath(int base_fd, const std::string& relative) {
  struct open_how how = {};
  how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW | O_DIRECTORY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, base_fd, relative.c_str(), &how, sizeof(how));
  if (fd >= 0) {
    UniqueFd closer(static_cast<int>(fd));
    return BeneathKind::kDirectory;
  }
  switch (int err = errno) {
    case ENOENT:
      return BeneathKind::kMissing;
    case ENOTDIR:
      return BeneathKind::kNotADirectory;
    case ELOOP:
    case EXDEV:
      return absl::InvalidArgumentError(
          absl::StrCat("\"", relative, "\": resolves through a symlink or out of the layer"));
    default:
      return linux::ErrnoStatus(err, absl::StrCat("open \"", relative, "\""));
  }
}

absl::Status UnlinkNoFollow(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return LastErrnoStatus(absl::StrCat("unlink \"", path, "\""));
  return absl::OkStatus();
}

absl::StatusOr<FileLock> FileLock::Acquire(const std::string& path) {
  absl::StatusOr<UniqueFd> fd = linux::OpenFile(path, O_RDWR | O_CREAT, 0600);
  if (!fd.ok()) return fd.status();
  if (::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("\"", path, "\" is locked: another process uses this store"));
    }
    return LastErrnoStatus(absl::StrCat("flock \"", path, "\""));
  }
  return FileLock(*std::move(fd));
}

absl::StatusOr<std::string> RunAndCaptureStdout(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("run: empty argv");
  const std::string what = absl::StrCat("run \"", absl::StrJoin(argv, " "), "\"");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return LastErrnoStatus(absl::StrCat(what, ": pipe"));
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  if (int err = ::posix_spawn_file_actions_init(&actions); err != 0) {
    return linux::ErrnoStatus(err, what);
  }
  absl::Cleanup destroy_actions = [&actions] { ::posix_spawn_file_actions_destroy(&actions); };
  // dup2 onto 0 and 1 clears O_CLOEXEC there; every other fd of ours is O_CLOEXEC.
  if (int err =
          ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
      err != 0) {
    return linux::ErrnoStatus(err, what);
  }
  if (int err = ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
      err != 0) {
    return linux::ErrnoStatus(err, what);
  }
  std::vector<char*> c_argv;
  for (const std::string& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);
  pid_t pid = 0;
  if (int err = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, c_argv.data(), environ);
      err != 0) {
    return linux::ErrnoStatus(err, what);
  }
  write_end.Reset();

  std::string out;
  absl::Status read_status;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      read_status = LastErrnoStatus(absl::StrCat(what, ": read stdout"));
      break;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  // Closing our end first means a child still writing gets EPIPE instead of blocking the wait.
  read_end.Reset();
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) return LastErrnoStatus(absl::StrCat(what, ": waitpid"));
  }
  if (!read_status.ok()) return read_status;
  if (WIFSIGNALED(wait_status)) {
    return absl::InternalError(absl::StrCat(what, ": killed by signal ", WTERMSIG(wait_status)));
  }
  if (WEXITSTATUS(wait_status) != 0) {
    return absl::InternalError(absl::StrCat(what, ": exit status ", WEXITSTATUS(wait_status)));
  }
  return out;
}

absl::Status SetXattrNoFollow(const std::string& path, const std::string& name,
                              absl::string_view value) {
  if (::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0) != 0) {
    return LastErrnoStatus(absl::StrCat("lsetxattr \"", path, "\" ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetXattrNoFollow(const std::string& path, const std::string& name) {
  std::string value(256, '\0');
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
  if (n < 0 && errno == ERANGE) {
    n = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      n = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    }
  }
  if (n < 0) {
    if (errno == ENODATA) return absl::NotFoundError(absl::StrCat(path, ": no xattr ", name));
    return LastErrnoStatus(absl::StrCat("lgetxattr \"", path, "\" ", name));
  }
  value.resize(static_cast<size_t>(n));
  return value;
}

absl::StatusOr<PathInfo> LStat(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return LastErrnoStatus(absl::StrCat("lstat \"", path, "\""));
  return PathInfo{st.st_mode, st.st_rdev, static_cast<int64_t>(st.st_size),
                  st.st_dev,  st.st_ino,  st.st_nlink};
}

absl::StatusOr<PathInfo> StatFd(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return LastErrnoStatus("fstat");
  return PathInfo{st.st_mode, st.st_rdev, static_cast<int64_t>(st.st_size),
                  st.st_dev,  st.st_ino,  st.st_nlink};
}

void StartWriteback(int fd, int64_t offset, int64_t length) {
  ::sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
}

absl::StatusOr<size_t> ReadAt(int fd, char* buffer, size_t size, int64_t offset) {
  while (true) {
    ssize_t n = ::pread(fd, buffer, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return LastErrnoStatus("pread");
    return static_cast<size_t>(n);
  }
}

absl::StatusOr<ByteSource> OpenFileSource(const std::string& path, size_t chunk_size) {
  NA_ASSIGN_OR_RETURN(linux::UniqueFd fd, linux::OpenFile(path, O_RDONLY | O_CLOEXEC));
  struct State {
    linux::UniqueFd fd;
    std::string buffer;
    std::string path;
  };
  auto state = std::make_shared<State>(State{std::move(fd), std::string(chunk_size, '\0'), path});
  return ByteSource([state]() -> absl::StatusOr<absl::string_view> {
    while (true) {
      ssize_t n = ::read(state->fd.get(), state->buffer.data(), state->buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return LastErrnoStatus(absl::StrCat("read \"", state->path, "\""));
      return absl::string_view(state->buffer.data(), static_cast<size_t>(n));
    }
  });
}

void RemoveTreeOrWarn(const std::string& path) {
  if (absl::Status s = linux::RemoveTree(path); !s.ok()) {
    LogWarning("remove \"%s\": %s", path, s.message());
  }
}

bool RunningAsRoot() { return ::geteuid() == 0; }

}  // namespace nodeagent::image
