#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/runtime/linux/cgroup_driver.h"

namespace nodeagent::runtime {

// The v2 driver: one directory, <cgroup_root>/<parent>/<id>, with the memory, cpu, pids,
// cpuset and io controllers enabled on the way down from the root as far as the host has them.
// `cgroup_root` must be a cgroup2 mount (it has cgroup.controllers).
absl::StatusOr<std::unique_ptr<CgroupDriver>> NewCgroupV2Driver(const std::string& cgroup_root,
                                                                const std::string& parent);

}  // namespace nodeagent::runtime
