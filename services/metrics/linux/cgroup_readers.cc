#include "services/metrics/linux/cgroup_readers.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/status_macros.h"
#include "services/metrics/linux/cached_file.h"

namespace nodeagent::metrics {
namespace {

std::optional<uint64_t> ReadValue(const CachedFile& file, std::string* buf) {
  if (file.empty() || !file.Read(buf).ok()) return std::nullopt;
  absl::StatusOr<uint64_t> value = ParseCgroupValue(*buf);
  if (!value.ok()) return std::nullopt;
  return *value;
}

uint64_t Saturating(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

std::string Join(const std::string& dir, const char* file) { return absl::StrCat(dir, "/", file); }

class CgroupV1Handle : public CgroupHandle {
 public:
  CgroupV1Handle(const std::map<std::string, std::string>& mounts, const std::string& path,
                 int64_t ticks_per_second)
      : nanos_per_tick_(1000000000 / static_cast<uint64_t>(ticks_per_second)) {
    auto dir = [&](const char* controller) -> std::string {
      auto it = mounts.find(controller);
      return it == mounts.end() ? std::string() : it->second + (path == "/" ? "" : path);
    };
    if (std::string d = dir("cpuacct"); !d.empty()) {
      cpuacct_usage_.SetPath(Join(d, "cpuacct.usage"));
      cpuacct_stat_.SetPath(Join(d, "cpuacct.stat"));
    }
    if (std::string d = dir("cpu"); !d.empty()) cpu_stat_.SetPath(Join(d, "cpu.stat"));
    if (std::string d = dir("memory"); !d.empty()) {
      memory_usage_.SetPath(Join(d, "memory.usage_in_bytes"));
      memory_max_usage_.SetPath(Join(d, "memory.max_usage_in_bytes"));
      memory_stat_.SetPath(Join(d, "memory.stat"));
      memory_failcnt_.SetPath(Join(d, "memory.failcnt"));
      memory_oom_control_.SetPath(Join(d, "memory.oom_control"));
    }
    if (std::string d = dir("pids"); !d.empty()) pids_current_.SetPath(Join(d, "pids.current"));
    if (std::string d = dir("blkio"); !d.empty()) {
      blkio_bytes_.SetPath(Join(d, "blkio.throttle.io_service_bytes_recursive"));
      blkio_serviced_.SetPath(Join(d, "blkio.throttle.io_serviced_recursive"));
    }
  }

  absl::StatusOr<CgroupSample> Read() const override {
    CgroupSample s;
    std::string buf;
    // The memory cgroup decides whether the container's cgroup still exists.
    if (!memory_usage_.empty()) {
      absl::Status read = memory_usage_.Read(&buf);
      if (!read.ok()) return read;
      NA_ASSIGN_OR_RETURN(uint64_t usage, ParseCgroupValue(buf));
      s.memory_usage_bytes = usage;
      s.memory_max_usage_bytes = ReadValue(memory_max_usage_, &buf);
      s.memory_failcnt = ReadValue(memory_failcnt_, &buf);
      if (memory_stat_.Read(&buf).ok()) {
        uint64_t inactive_file = 0;
        ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
          if (key == "total_inactive_file") inactive_file = value;
          if (key == "total_rss") s.memory_rss_bytes = value;
          if (key == "total_cache") s.memory_cache_bytes = value;
          if (key == "total_swap") s.memory_swap_bytes = value;
          if (key == "total_mapped_file") s.memory_mapped_file_bytes = value;
          if (key == "pgfault") s.memory_pgfault = value;
          if (key == "pgmajfault") s.memory_pgmajfault = value;
        });
        s.memory_working_set_bytes = Saturating(usage, inactive_file);
      }
      if (memory_oom_control_.Read(&buf).ok()) {
        ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
          if (key == "oom_kill") s.oom_kills = value;
        });
      }
    }
    if (!cpuacct_usage_.empty()) {
      s.cpu_usage_nanos = ReadValue(cpuacct_usage_, &buf);
      if (cpuacct_stat_.Read(&buf).ok()) {
        ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
          if (key == "user") s.cpu_user_nanos = value * nanos_per_tick_;
          if (key == "system") s.cpu_system_nanos = value * nanos_per_tick_;
        });
      }
    }
    if (!cpu_stat_.empty() && cpu_stat_.Read(&buf).ok()) {
      ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
        if (key == "nr_periods") s.cpu_periods = value;
        if (key == "nr_throttled") s.cpu_throttled_periods = value;
        if (key == "throttled_time") s.cpu_throttled_nanos = value;
      });
    }
    if (!pids_current_.empty()) s.pids_current = ReadValue(pids_current_, &buf);
    if (!blkio_bytes_.empty()) {
      std::string serviced;
      if (blkio_bytes_.Read(&buf).ok() && blkio_serviced_.Read(&serviced).ok()) {
        absl::StatusOr<std::vector<BlockDeviceIo>> io = ParseBlkio(buf, serviced);
        if (io.ok()) s.block_io = *std::move(io);
      }
    }
    return s;
  }

 private:
  const uint64_t nanos_per_tick_;
  CachedFile cpuacct_usage_, cpuacct_stat_, cpu_stat_;
  CachedFile memory_usage_, memory_max_usage_, memory_stat_, memory_failcnt_, memory_oom_control_;
  CachedFile pids_current_;
  CachedFile blkio_bytes_, blkio_serviced_;
};

class CgroupV1Reader : public CgroupReader {
 public:
  explicit CgroupV1Reader(std::map<std::string, std::string> mounts)
      : mounts_(std::move(mounts)), ticks_per_second_(::sysconf(_SC_CLK_TCK)) {
    if (ticks_per_second_ <= 0) ticks_per_second_ = 100;
  }
  std::string Version() const override { return "v1"; }
  std::unique_ptr<CgroupHandle> Open(const std::string& cgroup_path) const override {
    return std::make_unique<CgroupV1Handle>(mounts_, cgroup_path, ticks_per_second_);
  }

 private:
  const std::map<std::string, std::string> mounts_;
  int64_t ticks_per_second_;
};

class CgroupV2Handle : public CgroupHandle {
 public:
  explicit CgroupV2Handle(const std::string& dir)
      : cpu_stat_(Join(dir, "cpu.stat")),
        memory_current_(Join(dir, "memory.current")),
        memory_peak_(Join(dir, "memory.peak")),
        memory_stat_(Join(dir, "memory.stat")),
        memory_events_(Join(dir, "memory.events")),
        memory_swap_current_(Join(dir, "memory.swap.current")),
        pids_current_(Join(dir, "pids.current")),
        io_stat_(Join(dir, "io.stat")) {}

  absl::StatusOr<CgroupSample> Read() const override {
    CgroupSample s;
    std::string buf;
    // cpu.stat exists in every v2 cgroup, whatever controllers are enabled: it decides whether
    // the cgroup still exists.
    absl::Status read = cpu_stat_.Read(&buf);
    if (!read.ok()) return read;
    ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
      if (key == "usage_usec") s.cpu_usage_nanos = value * 1000;
      if (key == "user_usec") s.cpu_user_nanos = value * 1000;
      if (key == "system_usec") s.cpu_system_nanos = value * 1000;
      if (key == "nr_periods") s.cpu_periods = value;
      if (key == "nr_throttled") s.cpu_throttled_periods = value;
      if (key == "throttled_usec") s.cpu_throttled_nanos = value * 1000;
    });
    if (std::optional<uint64_t> usage = ReadValue(memory_current_, &buf)) {
      s.memory_usage_bytes = usage;
      s.memory_max_usage_bytes = ReadValue(memory_peak_, &buf);
      if (memory_stat_.Read(&buf).ok()) {
        uint64_t inactive_file = 0;
        ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
          if (key == "inactive_file") inactive_file = value;
          if (key == "anon") s.memory_rss_bytes = value;
          if (key == "file") s.memory_cache_bytes = value;
          if (key == "file_mapped") s.memory_mapped_file_bytes = value;
          if (key == "pgfault") s.memory_pgfault = value;
          if (key == "pgmajfault") s.memory_pgmajfault = value;
        });
        s.memory_working_set_bytes = Saturating(*usage, inactive_file);
      }
      if (memory_events_.Read(&buf).ok()) {
        ForEachKeyedValue(buf, [&](absl::string_view key, uint64_t value) {
          if (key == "max") s.memory_failcnt = value;
          if (key == "oom_kill") s.oom_kills = value;
        });
      }
      s.memory_swap_bytes = ReadValue(memory_swap_current_, &buf);
    }
    s.pids_current = ReadValue(pids_current_, &buf);
    if (io_stat_.Read(&buf).ok()) {
      absl::StatusOr<std::vector<BlockDeviceIo>> io = ParseIoStat(buf);
      if (io.ok()) s.block_io = *std::move(io);
    }
    return s;
  }

 private:
  CachedFile cpu_stat_, memory_current_, memory_peak_, memory_stat_, memory_events_,
      memory_swap_current_, pids_current_, io_stat_;
};

class CgroupV2Reader : public CgroupReader {
 public:
  explicit CgroupV2Reader(std::string root) : root_(std::move(root)) {}
  std::string Version() const override { return "v2"; }
  std::unique_ptr<CgroupHandle> Open(const std::string& cgroup_path) const override {
    return std::make_unique<CgroupV2Handle>(root_ + (cgroup_path == "/" ? "" : cgroup_path));
  }

 private:
  const std::string root_;
};

}  // namespace

absl::Status ReadSmallFile(const std::string& path, std::string* out) {
  out->clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return linux::LastErrnoStatus(absl::StrCat("open \"", path, "\""));
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      absl::Status status = linux::ErrnoStatus(err, absl::StrCat("read \"", path, "\""));
      // A cgroup removed while open reads as ENODEV.
      return err == ENODEV ? absl::NotFoundError(status.message()) : status;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<int> ReserveCachedFileDescriptors() {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return linux::LastErrnoStatus("getrlimit(NOFILE)");
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return linux::LastErrnoStatus("setrlimit(NOFILE)");
    }
  }
  rlim_t keep = limit.rlim_cur > 2048 ? limit.rlim_cur - 1024 : limit.rlim_cur / 2;
  int budget = static_cast<int>(std::min<rlim_t>(keep, 1 << 24));
  cached_fd_budget.store(budget);
  return budget;
}

std::unique_ptr<CgroupReader> NewCgroupV1Reader(std::map<std::string, std::string> mounts) {
  return std::make_unique<CgroupV1Reader>(std::move(mounts));
}

std::unique_ptr<CgroupReader> NewCgroupV2Reader(std::string root) {
  return std::make_unique<CgroupV2Reader>(std::move(root));
}

std::unique_ptr<CgroupReader> NewCgroupReader(const CgroupLayout& layout) {
  if (layout.unified) return NewCgroupV2Reader(layout.unified_root);
  return NewCgroupV1Reader(layout.v1_mounts);
}

absl::StatusOr<std::unique_ptr<CgroupReader>> DetectCgroupReader() {
  std::string mountinfo;
  NA_RETURN_IF_ERROR(ReadSmallFile("/proc/self/mountinfo", &mountinfo));
  absl::StatusOr<CgroupLayout> layout = ParseCgroupLayout(mountinfo);
  if (!layout.ok()) return Annotate(layout.status(), "detect cgroup layout");
  return NewCgroupReader(*layout);
}

}  // namespace nodeagent::metrics
