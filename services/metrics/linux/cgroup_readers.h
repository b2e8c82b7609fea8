#pragma once

// The cgroup readers of the metrics service: v1 (and hybrid hosts, which the runtime drives as
// v1) and v2, behind core's CgroupReader. Files are read whole with one open/read/close each;
// paths are resolved once per container.

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/metrics/core/parse.h"
#include "services/metrics/core/readers.h"

namespace nodeagent::metrics {

// v1: `mounts` maps each controller (memory, cpu, cpuacct, pids, blkio) to its mount point;
// co-mounted controllers share one. Missing controllers leave their fields empty.
std::unique_ptr<CgroupReader> NewCgroupV1Reader(std::map<std::string, std::string> mounts);

// v2: `root` is the cgroup2 mount point (/sys/fs/cgroup, or a fixture directory in tests).
std::unique_ptr<CgroupReader> NewCgroupV2Reader(std::string root);

// The reader for `layout`.
std::unique_ptr<CgroupReader> NewCgroupReader(const CgroupLayout& layout);

// The reader for this host, from /proc/self/mountinfo.
absl::StatusOr<std::unique_ptr<CgroupReader>> DetectCgroupReader();

// Raises the soft limit of open files to the hard limit and lets the readers keep all but 1024
// of them open (about 12 per running container). Returns the number they may keep.
absl::StatusOr<int> ReserveCachedFileDescriptors();

// Reads a small file (a cgroup or /proc file) whole into `out`. NOT_FOUND when it is missing.
absl::Status ReadSmallFile(const std::string& path, std::string* out);

}  // namespace nodeagent::metrics
