#pragma once

// The runtime's domain types: what a container is asked to be, and what it is.
// No gRPC or protobuf types here; grpc/convert.cc maps them to nodeagent.v1 messages.

#include <cstdint>
#include <map>
#include <optional>
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
  // Set: `source` is resolved in this mount namespace (see ShimMount::source_mount_ns).
  std::string source_mount_ns = {};
};

struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

// A port published from the host to the container (`-p [IP:]HOSTPORT:CTRPORT[/PROTO]`).
struct PublishedPort {
  std::string host_ip;  // Empty: every host address.
  uint32_t host_port = 0;
  uint32_t container_port = 0;
  std::string protocol = "tcp";
};

// The container's endpoint on a bridge network while it runs, as the network service made it.
struct NetworkEndpoint {
  std::string network;
  std::string ip_address;
  int prefix_length = 0;
  std::string gateway;
  std::string mac_address;
  std::string netns_path;  // Pinned netns the container joins.
  std::string hosts_path;  // Bound at /etc/hosts; kept current by the network service.
  std::string resolv_conf_path;
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
  // "" or "none": loopback only; "host"; "container:REF"; "bridge" or a network name: an
  // endpoint from the network service.
  std::string network_mode;
  std::vector<PublishedPort> ports;
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
  // ProcessStartTicks of shim_pid: tells our node-shim from a process that got its PID later.
  uint64_t shim_start_ticks = 0;
  ExitRecord exit;
  std::string start_error;  // Why the process could not start, if it could not.
  int64_t created_unix_nanos = 0;
  int64_t started_unix_nanos = 0;
  std::string cgroup_path;
  // Networks `nodectl network connect` added beyond the first, as found when the container last
  // stopped: its next start connects them again, as Docker's does.
  std::vector<std::string> extra_networks;
  // Set while the container holds an endpoint of the network service (from start until its
  // exit has been handled); kept across runtime restarts so nothing stays attached.
  std::optional<NetworkEndpoint> network;
};

// Whether the network mode asks the network service for an endpoint ("bridge" or a name).
bool UsesNetworkService(absl::string_view network_mode);

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

// User namespaces. --userns=private: a range of kUserNamespaceSize host ids picked by the
// runtime at create (root inside maps to its first id), kept in the container's record.
inline constexpr uint32_t kUserNamespaceBase = 100000;
inline constexpr uint32_t kUserNamespaceSize = 65536;
// The lowest kUserNamespaceBase + k * kUserNamespaceSize whose range overlaps none of the host
// ranges in `used`; RESOURCE_EXHAUSTED when none fits below 2^32.
absl::StatusOr<uint32_t> PickUserNamespaceRange(const std::vector<IdMapping>& used);
// Mode "" / "host" (no mappings), "private" (no mappings: the runtime picks them) or "map"
// (uid and gid mappings, each non-empty, non-overlapping, within 32 bits).
absl::Status ValidateUserNamespace(const UserNamespaceConfig& userns);

}  // namespace nodeagent::runtime
