#pragma once

// What the metrics service knows about a container (from the runtime's event stream) and what
// one read of its cgroup, network namespace and the node returns. No gRPC or protobuf types.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nodeagent::metrics {

// A container as the runtime describes it; everything here is static for the container's life.
struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::map<std::string, std::string> labels;
  // Relative to each hierarchy's root: "/nodeagent/<id>".
  std::string cgroup_path;
  // Host PID of the first process while running; 0 otherwise.
  pid_t pid = 0;
  bool running = false;
  int64_t started_unix_nanos = 0;
  // Limits from the spec; 0 means unlimited.
  int64_t memory_limit_bytes = 0;
  int64_t cpu_quota_us = 0;
  int64_t cpu_period_us = 0;
  int64_t pids_limit = 0;
  // --network of the spec: "none", "host", "bridge", a network's name or "container:NAME".
  std::string network_mode;
};

// Bytes read and written on one block device.
struct BlockDeviceIo {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
  uint64_t reads = 0;
  uint64_t writes = 0;
};

// One read of a cgroup. A field is empty when this host's cgroups do not provide it (a
// controller not mounted, a file the kernel lacks); the exporter then leaves the metric out,
// as cAdvisor does.
struct CgroupSample {
  std::optional<uint64_t> cpu_usage_nanos;
  std::optional<uint64_t> cpu_user_nanos;
  std::optional<uint64_t> cpu_system_nanos;
  std::optional<uint64_t> cpu_periods;
  std::optional<uint64_t> cpu_throttled_periods;
  std::optional<uint64_t> cpu_throttled_nanos;

  std::optional<uint64_t> memory_usage_bytes;
  std::optional<uint64_t> memory_max_usage_bytes;
  // usage - inactive_file (v1: total_inactive_file), floored at 0.
  std::optional<uint64_t> memory_working_set_bytes;
  std::optional<uint64_t> memory_rss_bytes;
  std::optional<uint64_t> memory_cache_bytes;
  std::optional<uint64_t> memory_swap_bytes;
  std::optional<uint64_t> memory_mapped_file_bytes;
  std::optional<uint64_t> memory_failcnt;
  std::optional<uint64_t> memory_pgfault;
  std::optional<uint64_t> memory_pgmajfault;
  std::optional<uint64_t> oom_kills;

  std::optional<uint64_t> pids_current;

  std::vector<BlockDeviceIo> block_io;
};

// Counters of one network interface (a line of /proc/<pid>/net/dev).
struct InterfaceStats {
  std::string name;
  uint64_t rx_bytes = 0;
  uint64_t rx_packets = 0;
  uint64_t rx_errors = 0;
  uint64_t rx_dropped = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_errors = 0;
  uint64_t tx_dropped = 0;
};

// The node as a whole (cAdvisor's id="/" container and machine_* metrics).
struct NodeSample {
  CgroupSample totals;
  std::vector<InterfaceStats> network;
  uint64_t machine_memory_bytes = 0;
  uint32_t machine_cpus = 0;
};

// One read of one container.
struct ContainerSample {
  ContainerInfo info;
  CgroupSample cgroup;
  std::vector<InterfaceStats> network;
  int64_t timestamp_unix_nanos = 0;
};

}  // namespace nodeagent::metrics
