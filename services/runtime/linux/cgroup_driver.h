#pragma once

// One interface over the host's cgroup layout (crun's cgroup-internal.h is the model):
// v1 (a hierarchy per controller, as on this project's hybrid development hosts) and v2
// (the unified hierarchy). DetectCgroupDriver picks one at start from what the host has.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodeagent::runtime {

// Limits for one container; zero/empty fields mean "no limit".
struct CgroupLimits {
  int64_t memory_bytes = 0;
  int64_t cpu_quota_us = 0;
  int64_t cpu_period_us = 0;  // 0 means the kernel default, 100000.
  int64_t pids_limit = 0;
  std::string cpuset_cpus;
};

class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;

  // "v1" or "v2".
  virtual std::string Version() const = 0;

  // Creates the container's cgroup (one dir per v1 controller, one dir on v2) below the
  // driver's parent, applies `limits`, and returns the directories whose cgroup.procs the
  // container's first process must join. On error nothing is left behind.
  virtual absl::StatusOr<std::vector<std::string>> Create(const std::string& container_id,
                                                          const CgroupLimits& limits) = 0;

  // Renames the cgroup made by Create(from_id, {}) -- a warm slot's, its first process in it
  // already (shim_protocol.h) -- to `to_id`'s and applies `limits`; returns the directories
  // as Create does. Renaming keeps the tasks where they are: no cgroup.procs write, so no wait
  // for an RCU grace period. UNIMPLEMENTED where cgroupfs cannot rename (v2: its
  // CLONE_INTO_CGROUP spares the wait anyway). When a rename fails, those done are undone;
  // when a limit fails, the cgroup has `to_id`'s name.
  virtual absl::StatusOr<std::vector<std::string>> Adopt(const std::string& from_id,
                                                         const std::string& to_id,
                                                         const CgroupLimits& limits) = 0;

  // Kills whatever still runs in the container's cgroup, waits for it to empty (bounded) and
  // removes the directories. A missing cgroup is not an error.
  virtual absl::Status Destroy(const std::string& container_id) = 0;

  // Freezes every task of the container (pause) and returns once the kernel reports the
  // cgroup frozen; Thaw undoes it. FAILED_PRECONDITION when the host has no freezer.
  virtual absl::Status Freeze(const std::string& container_id) = 0;
  virtual absl::Status Thaw(const std::string& container_id) = 0;

  // Container ids that have a cgroup below the parent (for reconciliation after a restart).
  virtual absl::StatusOr<std::vector<std::string>> ListContainerIds() const = 0;

  // Path of the container's cgroup relative to the hierarchy root ("/nodeagent/<id>").
  virtual std::string RelativePath(const std::string& container_id) const = 0;
};

// `cgroup_root` is normally /sys/fs/cgroup; `parent` is the directory below each hierarchy's
// root that holds the containers' cgroups ("nodeagent"; tests use their own).
// Picks v2 when <cgroup_root>/cgroup.controllers exists (pure v2), otherwise v1 when the v1
// memory/cpu/pids hierarchies are mounted (v1 or hybrid; on hybrid hosts the v1 hierarchies
// hold the controllers limits need).
absl::StatusOr<std::unique_ptr<CgroupDriver>> DetectCgroupDriver(
    const std::string& cgroup_root = "/sys/fs/cgroup", const std::string& parent = "nodeagent");

}  // namespace nodeagent::runtime
