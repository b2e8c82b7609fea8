#pragma once

// What the metrics core reads through: a cgroup reader (v1 and v2 implementations in
// services/metrics/linux) and the host's /proc. Interfaces, so the core is testable without the
// kernel and the v2 reader runs on fixture files.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/metrics/core/types.h"

namespace nodeagent::metrics {

// One container's cgroup with its file paths resolved once, when the container is first seen.
class CgroupHandle {
 public:
  virtual ~CgroupHandle() = default;
  // Reads the cgroup's files now. NOT_FOUND when the cgroup is gone (the container went away
  // between the event and the scrape); fields a host lacks are left empty.
  virtual absl::StatusOr<CgroupSample> Read() const = 0;
};

// Reads cgroups of one layout (v1/hybrid or v2).
class CgroupReader {
 public:
  virtual ~CgroupReader() = default;
  // "v1" or "v2".
  virtual std::string Version() const = 0;
  // `cgroup_path` is relative to each hierarchy's root ("/nodeagent/<id>").
  virtual std::unique_ptr<CgroupHandle> Open(const std::string& cgroup_path) const = 0;
};

// One container's network namespace (the /proc/<pid>/net/dev of its first process), opened once.
class NetworkHandle {
 public:
  virtual ~NetworkHandle() = default;
  virtual absl::StatusOr<std::vector<InterfaceStats>> Read() const = 0;
};

// The host's /proc and /sys beyond cgroups.
class HostReader {
 public:
  virtual ~HostReader() = default;
  // Interfaces of the network namespace `pid` is in (/proc/<pid>/net/dev).
  virtual absl::StatusOr<std::vector<InterfaceStats>> ReadNetwork(pid_t pid) const = 0;
  // The same, with the file kept open for repeated reads. Null when `pid` is in the node's own
  // network namespace: those interfaces are the host's, not a container's.
  virtual std::unique_ptr<NetworkHandle> OpenNetwork(pid_t pid) const = 0;
  // Node-wide totals (/proc/stat, /proc/meminfo, /proc/loadavg, /proc/diskstats, the host's
  // network namespace).
  virtual absl::StatusOr<NodeSample> ReadNode() const = 0;
  // "/dev/vda" for 254:0 (looked up once, then cached); "" when unknown.
  virtual std::string DeviceName(uint32_t major, uint32_t minor) const = 0;
  // The wall clock, nanoseconds since the epoch.
  virtual int64_t NowUnixNanos() const = 0;
};

}  // namespace nodeagent::metrics
