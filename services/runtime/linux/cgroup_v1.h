#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/runtime/linux/cgroup_driver.h"

namespace nodeagent::runtime {

// The v1 driver: one directory per hierarchy, <mount point>/<parent>/<id>, for the memory,
// cpu, cpuacct, pids, cpuset, freezer and blkio controllers (co-mounted controllers such as
// "cpu,cpuacct" share one directory). `mountinfo` is /proc/self/mountinfo's text; memory, cpu
// and pids must be mounted below `cgroup_root`, the others are used when present.
absl::StatusOr<std::unique_ptr<CgroupDriver>> NewCgroupV1Driver(const std::string& cgroup_root,
                                                                const std::string& parent,
                                                                absl::string_view mountinfo);

}  // namespace nodeagent::runtime
