#pragma once

// The code that runs in the container's first process between clone() and exec(): it turns
// the freshly cloned child of node-shim into the container. It runs only in node-shim, a
// single-threaded process, so it may allocate and use the C++ library (fork-safety rules of
// multi-threaded programs do not apply); it never runs in the multi-threaded daemon. The last
// steps (terminal, user, capabilities, seccomp, exec, optional init) are shared with
// `node-shim exec` (ExecProcess).

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/runtime/linux/seccomp_profile.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

struct ContainerInitArgs {
  int stdin_fd = -1;   // Becomes fd 0: /dev/null or the stdin pipe's read end; -1 with a tty.
  int stdout_fd = -1;  // Write end of the stdout pipe, becomes fd 1; -1 with a tty.
  int stderr_fd = -1;  // Write end of the stderr pipe, becomes fd 2; -1 with a tty.
  // O_CLOEXEC write end of the error pipe: a failure before exec is written here as
  // EncodeInitError(status); a successful exec closes it with nothing written.
  int error_fd = -1;
  // With a tty: the child's end of a socketpair; the pty master, allocated in the container's
  // own devpts, is sent over it (SCM_RIGHTS) just before exec.
  int console_fd = -1;
  // With a new user namespace: read end of a pipe on which node-shim writes one byte once it
  // has written the uid/gid maps.
  int sync_fd = -1;
  // CLONE_NEW* flags of the namespaces the child was cloned into (others are shared or
  // joined): a new uts namespace gets the hostname, a new net namespace loopback up, a new
  // cgroup namespace is unshared here once in the cgroups.
  uint64_t new_namespaces = 0;
  // Host cgroup directories to join (write "0" to cgroup.procs): those of
  // ShimConfig::cgroup_dirs that clone3(CLONE_INTO_CGROUP) did not already place us in.
  std::vector<std::string> cgroups_to_join;
};

// Sets the container up and execs config.args; on any failure writes the error to
// args.error_fd and _exit()s with StartErrorExitCode(status). Never returns.
//
// Order: stdio; wait for the id maps; cgroups, then a new cgroup namespace rooted there;
// mounts (rootfs.h); hostname; loopback up; pivot_root; masked and read-only paths; read-only
// root; working directory (created if missing, as Docker does); then FinishAndExec.
[[noreturn]] void RunContainerInit(const ShimConfig& config, const ContainerInitArgs& args);

// The last steps of every container process, in the container's root already.
struct ProcessSetup {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd;  // Absolute; for the first process created if missing, as Docker does.
  bool create_cwd = false;
  std::string user;  // ShimConfig::user syntax.
  bool tty = false;
  uint16_t tty_rows = 0;
  uint16_t tty_cols = 0;
  int console_fd = -1;  // With tty: where the pty master goes.
  uint64_t capabilities = 0;
  bool seccomp = true;
  // With seccomp: a Docker-format profile (seccomp_profile.h) instead of the default filter.
  std::optional<SeccompProfile> seccomp_profile;
  bool no_new_privs = true;
  bool init = false;
  std::string init_prompt;
};

// chdir, pty, user, no_new_privs, seccomp, capabilities, every fd above 2 close-on-exec, PATH
// lookup, then execve (or with `init`, fork the command and stay as its init). Returns only on
// failure.
absl::Status FinishAndExec(const ProcessSetup& setup);

// ProcessSetup for the container's first process: hardening from `config` (privileged,
// cap_add/cap_drop, seccomp, no_new_privs).
absl::StatusOr<ProcessSetup> FirstProcessSetup(const ShimConfig& config);

// The error pipe's message: "<absl status code number> <message>", newlines flattened.
std::string EncodeInitError(const absl::Status& status);
// Its inverse; a malformed message becomes INTERNAL with the text.
absl::Status DecodeInitError(absl::string_view text);

// Resets what a child inherits from node-shim and must not pass on (signal mask and
// dispositions), sets PR_SET_PDEATHSIG and makes it a session leader.
absl::Status ResetProcessState();

}  // namespace nodeagent::runtime
