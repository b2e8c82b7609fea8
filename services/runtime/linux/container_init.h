#pragma once

// The code that runs in the container's first process between clone() and exec(): it turns
// the freshly cloned child of node-shim into the container. It runs only in node-shim, a
// single-threaded process, so it may allocate and use the C++ library (fork-safety rules of
// multi-threaded programs do not apply); it never runs in the multi-threaded daemon.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

struct ContainerInitArgs {
  int stdin_fd = -1;   // Becomes fd 0 (/dev/null for now).
  int stdout_fd = -1;  // Write end of the stdout pipe, becomes fd 1.
  int stderr_fd = -1;  // Write end of the stderr pipe, becomes fd 2.
  // O_CLOEXEC write end of the error pipe: a failure before exec is written here as
  // EncodeInitError(status); a successful exec closes it with nothing written.
  int error_fd = -1;
  // Host cgroup directories to join (write "0" to cgroup.procs): those of
  // ShimConfig::cgroup_dirs that clone3(CLONE_INTO_CGROUP) did not already place us in.
  std::vector<std::string> cgroups_to_join;
};

// Sets the container up and execs config.args; on any failure writes the error to
// args.error_fd and _exit()s with StartErrorExitCode(status). Never returns.
//
// Order: stdio; cgroups, then a new cgroup namespace rooted there; mounts (rootfs.h);
// hostname; loopback up; pivot_root; read-only root; working directory (created if missing,
// as Docker does); every fd but 0-2 marked close-on-exec; PATH lookup; execve.
[[noreturn]] void RunContainerInit(const ShimConfig& config, const ContainerInitArgs& args);

// The error pipe's message: "<absl status code number> <message>", newlines flattened.
std::string EncodeInitError(const absl::Status& status);
// Its inverse; a malformed message becomes INTERNAL with the text.
absl::Status DecodeInitError(absl::string_view text);

}  // namespace nodeagent::runtime
