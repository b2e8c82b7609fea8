#include "services/common/linux/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"

namespace nodeagent::linux {

absl::StatusOr<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return LastErrnoStatus(absl::StrCat("open \"", path, "\""));
  return UniqueFd(fd);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  auto fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd->get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus(absl::StrCat("read \"", path, "\""));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data, mode_t mode,
                             Durability durability) {
  std::string tmp = absl::StrCat(path, ".tmp-", ::getpid());
  {
    auto fd = OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (!fd.ok()) return fd.status();
    if (absl::Status s = WriteAll(fd->get(), data); !s.ok()) {
      ::unlink(tmp.c_str());
      return absl::Status(s.code(), absl::StrCat("write \"", tmp, "\": ", s.message()));
    }
    if (durability == Durability::kHostCrash && ::fsync(fd->get()) != 0) {
      absl::Status s = LastErrnoStatus(absl::StrCat("fsync \"", tmp, "\""));
      ::unlink(tmp.c_str());
      return s;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = LastErrnoStatus(absl::StrCat("rename \"", tmp, "\" -> \"", path, "\""));
    ::unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("mkdir: empty path");
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) != 0 && errno != EEXIST) {
      return LastErrnoStatus(absl::StrCat("mkdir \"", partial, "\""));
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return LastErrnoStatus(absl::StrCat("stat \"", path, "\""));
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("mkdir \"", path, "\": not a directory"));
  }
  return absl::OkStatus();
}

namespace {

thread_local int tls_remove_errno = 0;
thread_local std::string* tls_remove_failed_path = nullptr;

int RemoveOne(const char* path, const struct stat* /*st*/, int type, struct FTW* /*ftw*/) {
  int rc = (type == FTW_DP) ? ::rmdir(path) : ::unlink(path);
  if (rc != 0 && errno != ENOENT) {
    tls_remove_errno = errno;
    if (tls_remove_failed_path) *tls_remove_failed_path = path;
    return 1;
  }
  return 0;
}

}  // namespace

absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return LastErrnoStatus(absl::StrCat("stat \"", path, "\""));
  }
  std::string failed;
  tls_remove_errno = 0;
  tls_remove_failed_path = &failed;
  // FTW_MOUNT: stay on this filesystem; a mount point left below shows up as rmdir EBUSY.
  int rc = ::nftw(path.c_str(), RemoveOne, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  tls_remove_failed_path = nullptr;
  if (rc != 0) {
    int err = tls_remove_errno != 0 ? tls_remove_errno : errno;
    return ErrnoStatus(err, absl::StrCat("remove \"", failed.empty() ? path : failed, "\""));
  }
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return LastErrnoStatus(absl::StrCat("opendir \"", path, "\""));
  std::vector<std::string> names;
  while (struct dirent* entry = ::readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  ::closedir(dir);
  return names;
}

namespace {
thread_local int64_t tls_usage_bytes = 0;
thread_local std::set<std::pair<dev_t, ino_t>>* tls_seen_inodes = nullptr;

int AddUsage(const char* /*path*/, const struct stat* st, int /*type*/, struct FTW* /*ftw*/) {
  if (st->st_nlink > 1 && !S_ISDIR(st->st_mode)) {
    if (!tls_seen_inodes->emplace(st->st_dev, st->st_ino).second) return 0;
  }
  tls_usage_bytes += static_cast<int64_t>(st->st_blocks) * 512;
  return 0;
}
}  // namespace

absl::StatusOr<int64_t> DiskUsage(const std::string& path) {
  std::set<std::pair<dev_t, ino_t>> seen;
  tls_seen_inodes = &seen;
  tls_usage_bytes = 0;
  int rc = ::nftw(path.c_str(), AddUsage, 64, FTW_PHYS | FTW_MOUNT);
  tls_seen_inodes = nullptr;
  if (rc != 0) return LastErrnoStatus(absl::StrCat("walk \"", path, "\""));
  return tls_usage_bytes;
}

}  // namespace nodeagent::linux
