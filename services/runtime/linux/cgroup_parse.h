#pragma once

// Parsers for the text formats of cgroup files and of /proc/self/mountinfo as far as cgroups
// need it. Pure functions: they are tested on fixture files, the drivers feed them the kernel's.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

// cgroup.controllers / cgroup.subtree_control: "cpuset cpu io memory pids".
std::vector<std::string> ParseCgroupControllers(absl::string_view text);

// Flat keyed files, one "key value" per line: memory.events, memory.stat, cpu.stat,
// pids.events, cgroup.events, cgroup.stat, and v1's memory.oom_control and memory.stat.
absl::StatusOr<std::map<std::string, uint64_t>> ParseFlatKeyed(absl::string_view text);

// cgroup.procs: one pid per line.
absl::StatusOr<std::vector<pid_t>> ParseCgroupProcs(absl::string_view text);

// A limit file holding a number or "max" (pids.max, memory.max, memory.high): -1 for "max".
absl::StatusOr<int64_t> ParseCgroupLimit(absl::string_view text);

// v1 hierarchies mounted below `cgroup_root`, from mountinfo text: controller -> mount point.
// Co-mounted controllers ("cpu,cpuacct") map to the same mount point; named hierarchies
// ("name=systemd") and cgroup2 mounts are left out. Octal escapes in paths are decoded.
absl::StatusOr<std::map<std::string, std::string>> ParseCgroupV1Mounts(
    absl::string_view mountinfo, absl::string_view cgroup_root);

}  // namespace nodeagent::runtime
