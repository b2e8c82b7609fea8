#pragma once

// Building the container's filesystem inside its new mount namespace, then entering it.
// Runs in the cloned child before exec (container_init.cc), never in a multi-threaded process.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

// In the current (new) mount namespace:
//  1. makes every mount a slave of the host's, so nothing done here propagates back;
//  2. applies config.rootfs_mounts at <bundle>/rootfs (or binds that directory onto itself
//     when there are none: pivot_root needs a mount point);
//  3. mounts /proc, a minimal /dev (tmpfs with null zero full random urandom tty, devpts,
//     shm, mqueue and the usual symlinks) and /sys (read-only), as Docker does;
//  4. applies config.mounts, their destinations resolved inside the rootfs.
// Returns the rootfs path for PivotRoot. `mounted_root` >= 0: the rootfs is mounted already
// (a user namespace's, userns_rootfs.h) and this O_PATH fd is it: step 2 is skipped and the
// path returned is "/proc/self/fd/<mounted_root>", and /sys is left alone (node-shim mounted it).
// `binds` (with `mounted_root`): detached clones of the bind sources, index-aligned with
// config.mounts, attached instead of binding the source paths.
absl::StatusOr<std::string> PrepareRootfs(const ShimConfig& config, int mounted_root = -1,
                                          std::vector<linux::UniqueFd> binds = {});

// Makes `rootfs` the root and detaches the old root, the way crun does: no directory for the
// old root is needed, so nothing is left to remove inside the container.
absl::Status PivotRoot(const std::string& rootfs);

// Makes the (already pivoted) root mount read-only; mounts below it keep their own flags.
absl::Status RemountRootReadonly();

// After pivot_root, as runc does: each of `masked` that exists is covered (a directory by an
// empty read-only tmpfs, anything else by /dev/null); each of `readonly` that exists is bound
// onto itself and made read-only, recursively. Missing paths are skipped.
absl::Status MaskPaths(const std::vector<std::string>& masked,
                       const std::vector<std::string>& readonly);

}  // namespace nodeagent::runtime
