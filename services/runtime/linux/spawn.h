#pragma once

// Starting the container's first process: clone3() into new namespaces, RunContainerInit in
// the child, and the wait for its exec. node-shim's half of the error-pipe handshake.

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

// At most this many fds go to a user namespace child (its rootfs and bind sources): the
// kernel's SCM_MAX_FD.
inline constexpr size_t kMaxPassedFds = 253;

struct SpawnedContainer {
  pid_t pid = 0;                // In node-shim's (the host's) pid namespace.
  linux::UniqueFd pidfd;        // Readable once the process has exited; for waitid/signals.
  linux::UniqueFd stdout_read;  // Read ends of the container's stdout and stderr (no tty).
  linux::UniqueFd stderr_read;
  linux::UniqueFd tty_master;   // With a tty: the pty master (output and input).
  linux::UniqueFd stdin_write;  // With stdin_open and no tty: the stdin pipe's write end.
};

// A namespace node-shim enters for the duration of a clone (shim_protocol.h: joined
// namespaces), then leaves again.
struct NamespaceJoin {
  int type = 0;            // CLONE_NEW*.
  linux::UniqueFd target;  // The namespace to join.
  linux::UniqueFd own;     // node-shim's own, to return to.
};

// Opens the joined namespaces of `namespaces` (and node-shim's own of the same types). Errors
// name the path; joining a user namespace is UNIMPLEMENTED.
absl::StatusOr<std::vector<NamespaceJoin>> OpenNamespaceJoins(
    const std::vector<ShimNamespace>& namespaces);
// setns into each target; `back` returns to the own ones.
absl::Status EnterNamespaces(std::vector<NamespaceJoin>& joins, bool back);
// CLONE_NEW* for a namespace type name ("net" -> CLONE_NEWNET), 0 for an unknown one.
int NamespaceFlag(const std::string& type);

// Clones the container's first process into the namespaces of config.namespaces (by default
// new pid, mount, uts, ipc and net ones; it makes its cgroup namespace itself, once in its
// cgroups), entering joined ones first and writing the id maps of a new user namespace, and
// returns once it has exec'd config.args (with a tty, once it has sent the pty master). When setup
// or exec fails, the child has been reaped (its namespaces, and so its mounts, are gone with it)
// and its error is returned. A single cgroup2 directory in config.cgroup_dirs is entered by clone3
// itself (CLONE_INTO_CGROUP), which spares the child a cgroup.procs write.
absl::StatusOr<SpawnedContainer> SpawnContainer(const ShimConfig& config);

// One message of node-shim's SendFds (a user namespace child's go-ahead, a warm child's go):
// `slots` flag bytes, then any bytes more (up to `max_extra`); fds[i] is the fd that came for a
// '1' flag, in order, empty for a '0'. CANCELLED on EOF; INTERNAL when fds are missing.
struct ReceivedFds {
  std::vector<linux::UniqueFd> fds;
  std::string extra;
};
absl::StatusOr<ReceivedFds> ReceiveFds(int sock, size_t slots, size_t max_extra);

// A child cloned before its container is known (node-shim warm, shim_protocol.h), waiting on
// `sock` for ResumeWarmChild.
struct WarmChild {
  pid_t pid = 0;
  linux::UniqueFd pidfd;
  linux::UniqueFd sock;  // node-shim's end: one 'r' byte once the child is ready.
};

// Clones the warm child into new pid, mount, uts, ipc and net namespaces. It makes every
// mount a slave, joins `cgroup_dirs` (cgroup.procs "0"), unshares its cgroup namespace rooted
// there, writes 'r' on its socket and waits. It dies with node-shim (PR_SET_PDEATHSIG) and
// exits when the socket closes.
absl::StatusOr<WarmChild> SpawnWarmChild(const std::vector<std::string>& cgroup_dirs);

// Hands the warm child its container: its stdio (or pty socket) and error pipe, and
// config.bundle, whose config.json it reads itself; it joins the net and ipc namespaces
// config.namespaces gives by path, then goes on as RunContainerInit. `config` must pass
// WarmStartable. Returns once the child has exec'd, like SpawnContainer; on failure it has
// been killed and reaped.
absl::StatusOr<SpawnedContainer> ResumeWarmChild(WarmChild child, const ShimConfig& config);

// The child's ends of what SpawnWithIo makes; -1 where not used.
struct ChildFds {
  int stdin_fd = -1;  // No tty: /dev/null or the stdin pipe.
  int stdout_fd = -1;
  int stderr_fd = -1;
  int console_fd = -1;  // With a tty: send the pty master here (FinishAndExec does).
  int error_fd = -1;    // O_CLOEXEC error pipe.
};

// Clones a plain child (no new namespaces) that runs `run` with its stdio fds; `run` returns
// only on failure, whose status reaches the parent through the error pipe. Returns once the
// child has exec'd, like SpawnContainer. For `node-shim exec`.
absl::StatusOr<SpawnedContainer> SpawnWithIo(
    bool tty, bool stdin_open, const std::function<absl::Status(const ChildFds&)>& run);

// Waits for the child behind `pidfd` to exit and reaps it: how it ended (si_code CLD_EXITED
// with si_status the exit status, or CLD_KILLED / CLD_DUMPED with the signal).
absl::StatusOr<siginfo_t> ReapChild(int pidfd);

// SIGKILLs the child behind `pidfd` and reaps it. For failures after a successful spawn.
void KillAndReapChild(int pidfd);

}  // namespace nodeagent::runtime
