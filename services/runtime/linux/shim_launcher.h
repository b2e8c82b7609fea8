#pragma once

// Starts node-shim for a container bundle and reads its start report (shim_protocol.h).

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nodeagent::runtime {

struct LaunchedShim {
  int shim_pid = 0;
  int container_pid = 0;
};

// posix_spawn()s `shim_path --bundle <bundle>` in its own session with a clean signal mask,
// fd 3 the start pipe. Returns once the container's first process has exec'd, or the error the
// shim reported (the shim has then exited and left nothing running).
absl::StatusOr<LaunchedShim> LaunchShim(const std::string& shim_path, const std::string& bundle,
                                        absl::Duration timeout);
// `shim_path exec --bundle <bundle> --exec-id <exec_id>`: one more process in a running
// container; same start report.
absl::StatusOr<LaunchedShim> LaunchExecShim(const std::string& shim_path, const std::string& bundle,
                                            const std::string& exec_id, absl::Duration timeout);

// posix_spawn()s `args` (args[0] being node-shim) in its own session with a clean signal
// mask: fd 3 a dup of `start_pipe_write`, fd 4 of `control_read` when given, 0 /dev/null.
absl::StatusOr<pid_t> SpawnShimProcess(const std::string& shim_path, std::vector<std::string> args,
                                       int start_pipe_write, int control_read = -1);

// Reads a start report (shim_protocol.h) from `fd` until EOF: the container's pid, or the
// error node-shim reported. DEADLINE_EXCEEDED after `timeout`.
absl::StatusOr<int> ReadStartReport(int fd, absl::Duration timeout);

}  // namespace nodeagent::runtime
