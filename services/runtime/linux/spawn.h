#pragma once

// Starting the container's first process: clone3() into new namespaces, RunContainerInit in
// the child, and the wait for its exec. node-shim's half of the error-pipe handshake.

#include <signal.h>
#include <sys/types.h>

#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

struct SpawnedContainer {
  pid_t pid = 0;                // In node-shim's (the host's) pid namespace.
  linux::UniqueFd pidfd;        // Readable once the process has exited; for waitid/signals.
  linux::UniqueFd stdout_read;  // Read ends of the container's stdout and stderr.
  linux::UniqueFd stderr_read;
};

// Clones the container's first process into new pid, mount, uts, ipc and net namespaces (it
// makes its cgroup namespace itself, once in its cgroups) and returns once it has exec'd
// config.args. When setup or exec fails, the child has been reaped (its namespaces, and so its
// mounts, are gone with it) and its error is returned. A single cgroup2 directory in
// config.cgroup_dirs is entered by clone3 itself (CLONE_INTO_CGROUP), which spares the child
// a cgroup.procs write.
absl::StatusOr<SpawnedContainer> SpawnContainer(const ShimConfig& config);

// Waits for the child behind `pidfd` to exit and reaps it: how it ended (si_code CLD_EXITED
// with si_status the exit status, or CLD_KILLED / CLD_DUMPED with the signal).
absl::StatusOr<siginfo_t> ReapChild(int pidfd);

// SIGKILLs the child behind `pidfd` and reaps it. For failures after a successful spawn.
void KillAndReapChild(int pidfd);

}  // namespace nodeagent::runtime
