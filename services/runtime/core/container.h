#pragma once

// The runtime's domain types: what a container is asked to be, and what it is.
// No gRPC or protobuf types here; grpc/convert.cc maps them to nodeagent.v1 messages.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/runtime/linux/cgroup_driver.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

struct MountSpec {
  std::string type;
  std::string source;
  std::string destination;
  std::vector<std::string> options;
};

struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

struct UserNamespaceConfig {
  std::string mode;  // "", "private" or "map".
  std::vector<IdMapping> uid_mappings;
  std::vector<IdMapping> gid_mappings;
};

// What the caller asks for.
struct ContainerConfig {
  std::string image;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string working_dir;
  std::string hostname;
  std::vector<MountSpec> mounts;
  CgroupLimits limits;
  std::string network_mode;
  std::map<std::string, std::string> labels;
  bool tty = false;
  bool stdin_open = false;
  bool auto_remove = false;
  bool read_only_rootfs = false;
  bool init = false;
  std::string user;
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  bool privileged = false;
  std::string seccomp_profile;
  UserNamespaceConfig userns;
  std::string ipc_mode;
  std::string pid_mode;
  std::string init_prompt;
  int stop_signal = 0;
  int stop_timeout_seconds = 0;
};

enum class ContainerState { kCreated, kRunning, kPaused, kExited };

absl::string_view ContainerStateName(ContainerState state);

// What the runtime knows about one container; persisted as <bundle>/container.json.
struct ContainerRecord {
  std::string id;
  std::string name;
  ContainerConfig config;
  ContainerState state = ContainerState::kCreated;
  std::string image_id;
  // Resolved process: image defaults merged with the config.
  std::vector<std::string> process_args;
  std::vector<std::string> process_env;
  std::string process_cwd = "/";
  std::vector<MountSpec> rootfs_mounts;
  int pid = 0;       // Host PID of the first process while running.
  int shim_pid = 0;  // node-shim holding the container.
  ExitRecord exit;
  std::string start_error;  // Why the process could not start, if it could not.
  int64_t created_unix_nanos = 0;
  int64_t started_unix_nanos = 0;
  std::string cgroup_path;
};

std::string SerializeContainerRecord(const ContainerRecord& record);
absl::StatusOr<ContainerRecord> ParseContainerRecord(absl::string_view json);

// Validation of caller input; errors are INVALID_ARGUMENT naming the bad value.
absl::Status ValidateContainerName(absl::string_view name);
// Volume names follow the same rule: nothing that could name a path outside the volume dir.
absl::Status ValidateVolumeName(absl::string_view name);
absl::Status ValidateHostname(absl::string_view hostname);
absl::Status ValidateConfig(const ContainerConfig& config);

// Image defaults a container starts from.
struct ImageRunDefaults {
  std::vector<std::string> env;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
};

// Docker's rules: args replace the image's cmd (entrypoint stays); env entries override the
// image's by key; a PATH is always present; HOSTNAME is set.
struct ResolvedProcess {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd;
};
absl::StatusOr<ResolvedProcess> ResolveProcess(const ContainerConfig& config,
                                               const ImageRunDefaults& image,
                                               absl::string_view hostname);

}  // namespace nodeagent::runtime
