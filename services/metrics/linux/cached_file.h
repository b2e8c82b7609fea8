#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/metrics/linux/cgroup_readers.h"

namespace nodeagent::metrics {

// How many more descriptors CachedFile may keep open (the rest of the process's limit is left
// for sockets); set from the limit by ReserveCachedFileDescriptors.
inline std::atomic<int> cached_fd_budget{512};

// A cgroup or /proc file, opened on first use and then re-read with pread(2) from offset 0: kernfs
// and procfs regenerate the content on every read from the start, so a scrape costs one
// syscall per file instead of a path walk, an open and a close. When no descriptor can be kept
// (EMFILE), the file is read by path each time.
class CachedFile {
 public:
  CachedFile() = default;
  explicit CachedFile(std::string path) : path_(std::move(path)) {}
  CachedFile(const CachedFile&) = delete;
  CachedFile& operator=(const CachedFile&) = delete;
  ~CachedFile() {
    int fd = fd_.load();
    if (fd >= 0) {
      ::close(fd);
      cached_fd_budget.fetch_add(1);
    }
  }

  bool empty() const { return path_.empty(); }
  // Only before the first Read.
  void SetPath(std::string path) { path_ = std::move(path); }

  absl::Status Read(std::string* out) const {
    out->clear();
    int fd = fd_.load(std::memory_order_acquire);
    if (fd < 0) {
      // Over budget: read by path, keep nothing open.
      if (cached_fd_budget.fetch_sub(1) <= 0) {
        cached_fd_budget.fetch_add(1);
        return ReadSmallFile(path_, out);
      }
      int opened = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (opened < 0) {
        cached_fd_budget.fetch_add(1);
        if (errno == EMFILE || errno == ENFILE) return ReadSmallFile(path_, out);
        return linux::LastErrnoStatus(absl::StrCat("open \"", path_, "\""));
      }
      int expected = -1;
      if (fd_.compare_exchange_strong(expected, opened, std::memory_order_acq_rel)) {
        fd = opened;
      } else {
        ::close(opened);
        cached_fd_budget.fetch_add(1);
        fd = expected;
      }
    }
    char buf[8192];
    off_t offset = 0;
    while (true) {
      ssize_t n = ::pread(fd, buf, sizeof(buf), offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        absl::Status status = linux::ErrnoStatus(err, absl::StrCat("read \"", path_, "\""));
        // The cgroup was removed: its files read as ENODEV (procfs: ESRCH once the task is gone).
        return err == ENODEV || err == ESRCH ? absl::NotFoundError(status.message()) : status;
      }
      if (n == 0) break;
      out->append(buf, static_cast<size_t>(n));
      offset += n;
    }
    return absl::OkStatus();
  }

 private:
  std::string path_;
  mutable std::atomic<int> fd_{-1};
};

}  // namespace nodeagent::metrics
