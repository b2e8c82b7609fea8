#pragma once

// Parsers for the text the metrics service reads: cgroup v1 and v2 files, /proc/<pid>/net/dev,
// /proc/stat, /proc/meminfo and /proc/self/mountinfo. Pure functions, tested on fixture files;
// the Linux readers feed them the kernel's text.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/metrics/core/types.h"

namespace nodeagent::metrics {

// The value cgroup files use for "no limit" ("max" on v2, a huge number on v1) after parsing.
inline constexpr uint64_t kUnlimited = UINT64_MAX;

// A single number, or "max" (kUnlimited); surrounding whitespace is ignored.
absl::StatusOr<uint64_t> ParseCgroupValue(absl::string_view text);

// Calls `fn` for each "key value" line whose value is a number (memory.stat, cpu.stat,
// memory.events, memory.oom_control, cpuacct.stat). Malformed lines are skipped.
void ForEachKeyedValue(absl::string_view text,
                       absl::FunctionRef<void(absl::string_view key, uint64_t value)> fn);

// v1 blkio.throttle.io_service_bytes(_recursive) and io_serviced(_recursive):
// "8:0 Read 4096" lines, merged per device ("Total" lines are left out).
absl::StatusOr<std::vector<BlockDeviceIo>> ParseBlkio(absl::string_view service_bytes,
                                                      absl::string_view serviced);

// v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" lines.
absl::StatusOr<std::vector<BlockDeviceIo>> ParseIoStat(absl::string_view text);

// /proc/<pid>/net/dev: two header lines, then "  eth0: rx_bytes rx_packets ... " lines.
absl::StatusOr<std::vector<InterfaceStats>> ParseNetDev(absl::string_view text);

// The "cpu" line of /proc/stat, in clock ticks (USER_HZ).
struct CpuTicks {
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
};
absl::StatusOr<CpuTicks> ParseProcStatCpu(absl::string_view text);

// /proc/meminfo: "MemTotal:  24684400 kB" -> {"MemTotal", 25276825600} (bytes).
std::map<std::string, uint64_t> ParseMeminfo(absl::string_view text);

// Where this host's cgroups are, from /proc/self/mountinfo.
struct CgroupLayout {
  // True on a pure v2 host (cgroup2 mounted at the cgroup root, no v1 memory hierarchy).
  bool unified = false;
  // v2: the cgroup2 mount point.
  std::string unified_root;
  // v1 and hybrid: controller -> mount point ("cpu" and "cpuacct" map to the same dir when
  // co-mounted). Named hierarchies (name=systemd) are left out.
  std::map<std::string, std::string> v1_mounts;
};
// The v1 memory controller decides: if it is mounted the host is v1 (or hybrid, which the
// runtime drives as v1); otherwise the cgroup2 mount is used.
absl::StatusOr<CgroupLayout> ParseCgroupLayout(absl::string_view mountinfo);

// Prometheus label name for a container label: "container_label_" + key with every character
// outside [a-zA-Z0-9_] replaced by '_' (as cAdvisor does).
std::string ContainerLabelName(absl::string_view key);

}  // namespace nodeagent::metrics
