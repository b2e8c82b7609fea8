#pragma once

// Warm node-shims: a shim started ahead of its container (node-shim warm, shim_protocol.h),
// its child already cloned into new namespaces and already in a cgroup of its own. A start
// that takes one skips the shim's exec, the clone and -- the larger part on cgroup v1 -- the
// cgroup.procs write, which waits for an RCU grace period (5-15 ms here): the runtime renames
// the slot's cgroup to the container's instead (CgroupDriver::Adopt). The pool refills in the
// background, so the wait happens while nobody is waiting for it.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/cgroup_driver.h"
#include "services/runtime/linux/shim_launcher.h"

namespace nodeagent::runtime {

// One ready slot. Destroying it unlaunched retires it: node-shim removes its child and cgroup,
// and the destructor waits (bounded) until it has.
class WarmShim {
 public:
  WarmShim(WarmShim&&) = default;
  WarmShim& operator=(WarmShim&&) = default;
  ~WarmShim();

  // The cgroup "id" the slot's cgroup was made under (CgroupDriver::Create).
  const std::string& cgroup_id() const { return cgroup_id_; }
  int shim_pid() const { return shim_pid_; }
  absl::Time ready_since() const { return ready_since_; }

  // Sends the go for `bundle` (its config.json written, its cgroup adopted) and reads the start
  // report, as LaunchShim does. Consumes the slot.
  absl::StatusOr<LaunchedShim> Launch(const std::string& bundle, absl::Duration timeout);

 private:
  friend class WarmShimPool;
  WarmShim() = default;
  // After the control pipe closed: waits (bounded) for node-shim to end, SIGKILLs it after
  // that, and removes the slot's cgroup if node-shim could not (killed outright).
  void Finish();
  bool Alive() const;

  std::string cgroup_id_;
  CgroupDriver* cgroups_ = nullptr;
  int shim_pid_ = 0;
  linux::UniqueFd pidfd_;    // node-shim's.
  linux::UniqueFd report_;   // Start pipe, read end.
  linux::UniqueFd control_;  // Control pipe, write end.
  absl::Time ready_since_;
};

struct WarmShimPoolOptions {
  std::string shim_path;
  int size = 1;  // Ready slots kept.
  // A slot older than this is replaced: its mount namespace is a copy of the host's from when
  // it was made, and would keep filesystems unmounted since then busy.
  absl::Duration max_age = absl::Seconds(60);
  absl::Duration ready_timeout = absl::Seconds(10);
  absl::Duration refill_hold = absl::Milliseconds(100);
};

class WarmShimPool {
 public:
  // `cgroups` must support Adopt (v1). Starts the refill thread.
  WarmShimPool(WarmShimPoolOptions options, CgroupDriver* cgroups);
  // Retires every slot and waits (bounded) for their node-shims to have cleaned up.
  ~WarmShimPool();

  // A ready slot, or nullopt when none is (the caller starts the container cold). Refilling
  // then waits for Resume, or options.refill_hold at most: a new slot's cgroup.procs write
  // holds the kernel's cgroup_mutex for a whole RCU grace period, which would stall the
  // cgroup work (rename, limits, rmdir) of the container just started and of its exit.
  std::optional<WarmShim> Take();
  // The container started from the last slot taken is done with its cgroup (it exited and
  // its cgroup is gone), or its start failed: refill now.
  void Resume();

  // Cgroup ids of warm slots start with this; never a container id (64 hex digits).
  static constexpr char kCgroupPrefix[] = "warm-";

 private:
  void RefillLoop();
  absl::StatusOr<WarmShim> MakeSlot();

  const WarmShimPoolOptions options_;
  CgroupDriver* const cgroups_;
  absl::Mutex mu_;
  std::deque<WarmShim> ready_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t wakes_ ABSL_GUARDED_BY(mu_) = 0;  // Bumped to wake the refill thread.
  absl::Time hold_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread refill_;
};

}  // namespace nodeagent::runtime
