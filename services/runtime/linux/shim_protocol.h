#pragma once

// The contract between the runtime service and node-shim, the small per-container monitor.
//
// The runtime writes <bundle>/config.json (ShimConfig) and starts
//   node-shim --bundle <bundle>
// with fd 3 the write end of a pipe (the "start pipe"). node-shim:
//   1. clone()s the container's first process into new pid, mount, uts, ipc and net
//      namespaces; that child joins the cgroup dirs in ShimConfig::cgroup_dirs, unshares the
//      cgroup namespace, mounts the rootfs at <bundle>/rootfs (visible only in the container's
//      mount namespace, which is a slave of the host's), /proc, /dev, /sys, sets the hostname,
//      brings loopback up, pivot_root()s, and execs args (PATH looked up inside the container).
//   2. writes one line to the start pipe and closes it:
//        "ok <host pid of the container's first process>\n"  or
//        "error <absl status code number> <message>\n"      (nothing is left running then)
//   3. writes <bundle>/shim.pid (its own pid) before step 1 and <bundle>/init.pid after it,
//   4. appends the container's stdout/stderr to <bundle>/container.log (log_format.h records),
//   5. when the first process has exited and its output is drained, writes <bundle>/exit.json
//      (ExitRecord) atomically and exits 0.
// node-shim never talks gRPC and outlives a restart of the runtime service.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

inline constexpr char kShimConfigFile[] = "config.json";
inline constexpr char kShimPidFile[] = "shim.pid";
inline constexpr char kInitPidFile[] = "init.pid";
inline constexpr char kContainerLogFile[] = "container.log";
inline constexpr char kExitFile[] = "exit.json";
inline constexpr char kRootfsDir[] = "rootfs";
inline constexpr int kShimStartPipeFd = 3;

// One mount(2) call: mount(source, <target>, type, flags-from-options, data-from-options).
struct ShimMount {
  std::string type;  // "overlay", "bind", "tmpfs", "proc", ...
  std::string source;
  std::string destination;           // Absolute path in the container; empty for the rootfs itself.
  std::vector<std::string> options;  // "ro", "rbind", "rslave", "lowerdir=...", ...
};

struct ShimConfig {
  std::string id;
  std::string bundle;                    // Absolute path of the container's directory.
  std::vector<ShimMount> rootfs_mounts;  // Applied in order at <bundle>/rootfs.
  bool readonly_rootfs = false;
  std::vector<ShimMount> mounts;  // Extra mounts inside the rootfs, in order.
  std::string hostname;
  std::vector<std::string> args;  // argv; args[0] looked up in the container's PATH.
  std::vector<std::string> env;   // KEY=VALUE.
  std::string cwd = "/";
  std::vector<std::string> cgroup_dirs;  // Host cgroup dirs the first process joins.
};

struct ExitRecord {
  int exit_code = 0;  // 0-255, or 128+signal.
  int signal = 0;     // Signal that ended the process, 0 if none.
  bool oom_killed = false;
  int64_t finished_unix_nanos = 0;
};

std::string SerializeShimConfig(const ShimConfig& config);
absl::StatusOr<ShimConfig> ParseShimConfig(absl::string_view json);
std::string SerializeExitRecord(const ExitRecord& record);
absl::StatusOr<ExitRecord> ParseExitRecord(absl::string_view json);

}  // namespace nodeagent::runtime
