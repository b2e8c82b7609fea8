#include "services/metrics/linux/host_reader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "services/common/status_macros.h"
#include "services/metrics/core/parse.h"
#include "services/metrics/linux/cached_file.h"
#include "services/metrics/linux/cgroup_readers.h"

namespace nodeagent::metrics {
namespace {

class ProcNetworkHandle : public NetworkHandle {
 public:
  explicit ProcNetworkHandle(std::string path) : file_(std::move(path)) {}
  absl::StatusOr<std::vector<InterfaceStats>> Read() const override {
    std::string buf;
    NA_RETURN_IF_ERROR(file_.Read(&buf));
    return ParseNetDev(buf);
  }

 private:
  CachedFile file_;
};

class ProcHostReader : public HostReader {
 public:
  ProcHostReader(std::string proc, std::string sys) : proc_(std::move(proc)), sys_(std::move(sys)) {
    long ticks = ::sysconf(_SC_CLK_TCK);
    nanos_per_tick_ = 1000000000 / static_cast<uint64_t>(ticks > 0 ? ticks : 100);
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    cpus_ = cpus > 0 ? static_cast<uint32_t>(cpus) : 1;
    node_netns_ = NetnsInode(proc_ + "/self/ns/net");
  }

  absl::StatusOr<std::vector<InterfaceStats>> ReadNetwork(pid_t pid) const override {
    std::string buf;
    NA_RETURN_IF_ERROR(ReadSmallFile(absl::StrCat(proc_, "/", pid, "/net/dev"), &buf));
    return ParseNetDev(buf);
  }

  std::unique_ptr<NetworkHandle> OpenNetwork(pid_t pid) const override {
    // A process in the node's own network namespace (a container run with --network host,
    // whatever its spec says) has no interfaces of its own: report none, as cAdvisor does.
    if (std::optional<ino_t> netns = NetnsInode(absl::StrCat(proc_, "/", pid, "/ns/net"));
        netns.has_value() && netns == node_netns_) {
      return nullptr;
    }
    return std::make_unique<ProcNetworkHandle>(absl::StrCat(proc_, "/", pid, "/net/dev"));
  }

  absl::StatusOr<NodeSample> ReadNode() const override {
    NodeSample node;
    node.machine_cpus = cpus_;
    CgroupSample& t = node.totals;
    std::string buf;
    NA_RETURN_IF_ERROR(ReadSmallFile(proc_ + "/stat", &buf));
    NA_ASSIGN_OR_RETURN(CpuTicks ticks, ParseProcStatCpu(buf));
    t.cpu_user_nanos = (ticks.user + ticks.nice) * nanos_per_tick_;
    t.cpu_system_nanos = (ticks.system + ticks.irq + ticks.softirq) * nanos_per_tick_;
    t.cpu_usage_nanos = *t.cpu_user_nanos + *t.cpu_system_nanos + ticks.steal * nanos_per_tick_;

    NA_RETURN_IF_ERROR(ReadSmallFile(proc_ + "/meminfo", &buf));
    std::map<std::string, uint64_t> mem = ParseMeminfo(buf);
    auto get = [&mem](const char* key) -> uint64_t {
      auto it = mem.find(key);
      return it == mem.end() ? 0 : it->second;
    };
    node.machine_memory_bytes = get("MemTotal");
    uint64_t usage = get("MemTotal") > get("MemFree") ? get("MemTotal") - get("MemFree") : 0;
    t.memory_usage_bytes = usage;
    t.memory_working_set_bytes = usage > get("Inactive(file)") ? usage - get("Inactive(file)") : 0;
    t.memory_rss_bytes = get("AnonPages");
    t.memory_cache_bytes = get("Cached") + get("Buffers");
    t.memory_mapped_file_bytes = get("Mapped");
    t.memory_swap_bytes =
        get("SwapTotal") > get("SwapFree") ? get("SwapTotal") - get("SwapFree") : 0;

    // "0.10 0.20 0.30 2/345 6789": the fourth field counts every task (thread) on the node.
    if (ReadSmallFile(proc_ + "/loadavg", &buf).ok()) {
      std::vector<absl::string_view> f = absl::StrSplit(buf, ' ', absl::SkipEmpty());
      uint64_t tasks = 0;
      if (f.size() > 3 && absl::SimpleAtoi(f[3].substr(f[3].find('/') + 1), &tasks)) {
        t.pids_current = tasks;
      }
    }
    if (ReadSmallFile(proc_ + "/diskstats", &buf).ok()) t.block_io = WholeDisks(buf);
    if (ReadSmallFile(proc_ + "/self/net/dev", &buf).ok()) {
      absl::StatusOr<std::vector<InterfaceStats>> net = ParseNetDev(buf);
      if (net.ok()) node.network = *std::move(net);
    }
    return node;
  }

  std::string DeviceName(uint32_t major, uint32_t minor) const override {
    std::pair<uint32_t, uint32_t> key(major, minor);
    {
      absl::MutexLock lock(&mu_);
      if (auto it = device_names_.find(key); it != device_names_.end()) return it->second;
    }
    std::string name;
    std::string buf;
    if (ReadSmallFile(absl::StrCat(sys_, "/dev/block/", major, ":", minor, "/uevent"), &buf).ok()) {
      for (absl::string_view line : absl::StrSplit(buf, '\n')) {
        if (absl::ConsumePrefix(&line, "DEVNAME=")) name = absl::StrCat("/dev/", line);
      }
    }
    absl::MutexLock lock(&mu_);
    device_names_[key] = name;
    return name;
  }

  int64_t NowUnixNanos() const override { return absl::GetCurrentTimeNanos(); }

 private:
  // /proc/diskstats lines of whole disks (those in /sys/block, loop and ram devices left out)
  // that have seen I/O.
  std::vector<BlockDeviceIo> WholeDisks(absl::string_view text) const {
    std::vector<BlockDeviceIo> out;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      BlockDeviceIo d;
      uint64_t sectors_read = 0, sectors_written = 0;
      if (f.size() < 10 || !absl::SimpleAtoi(f[0], &d.major) || !absl::SimpleAtoi(f[1], &d.minor) ||
          !absl::SimpleAtoi(f[3], &d.reads) || !absl::SimpleAtoi(f[5], &sectors_read) ||
          !absl::SimpleAtoi(f[7], &d.writes) || !absl::SimpleAtoi(f[9], &sectors_written)) {
        continue;
      }
      if (absl::StartsWith(f[2], "loop") || absl::StartsWith(f[2], "ram")) continue;
      if (d.reads == 0 && d.writes == 0) continue;
      if (!IsWholeDisk(std::string(f[2]))) continue;
      d.read_bytes = sectors_read * 512;
      d.write_bytes = sectors_written * 512;
      out.push_back(d);
    }
    return out;
  }

  bool IsWholeDisk(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = whole_disks_.find(name);
    if (it != whole_disks_.end()) return it->second;
    bool whole = ::access(absl::StrCat(sys_, "/block/", name).c_str(), F_OK) == 0;
    whole_disks_[name] = whole;
    return whole;
  }

  // The inode of a network namespace link (/proc/<pid>/ns/net); empty when it cannot be read.
  static std::optional<ino_t> NetnsInode(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return st.st_ino;
  }

  const std::string proc_;
  const std::string sys_;
  // The network namespace node-metricsd runs in: the node's.
  std::optional<ino_t> node_netns_;
  uint64_t nanos_per_tick_ = 10000000;
  uint32_t cpus_ = 1;
  mutable absl::Mutex mu_;
  mutable std::map<std::pair<uint32_t, uint32_t>, std::string> device_names_ ABSL_GUARDED_BY(mu_);
  mutable std::map<std::string, bool> whole_disks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<HostReader> NewHostReader(std::string proc, std::string sys) {
  return std::make_unique<ProcHostReader>(std::move(proc), std::move(sys));
}

}  // namespace nodeagent::metrics
