#include "services/runtime/core/container.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/runtime/linux/seccomp_profile.h"

namespace nodeagent::runtime {
namespace {

using nlohmann::json;

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

json MountsToJson(const std::vector<MountSpec>& mounts) {
  json out = json::array();
  for (const MountSpec& m : mounts) {
    out.push_back({{"type", m.type},
                   {"source", m.source},
                   {"destination", m.destination},
                   {"options", m.options}});
  }
  return out;
}

std::vector<MountSpec> MountsFromJson(const json& j) {
  std::vector<MountSpec> out;
  for (const json& m : j) {
    out.push_back({m.value("type", ""), m.value("source", ""), m.value("destination", ""),
                   m.value("options", std::vector<std::string>{})});
  }
  return out;
}

json MappingsToJson(const std::vector<IdMapping>& mappings) {
  json out = json::array();
  for (const IdMapping& m : mappings) {
    out.push_back({{"container_id", m.container_id}, {"host_id", m.host_id}, {"size", m.size}});
  }
  return out;
}

std::vector<IdMapping> MappingsFromJson(const json& j) {
  std::vector<IdMapping> out;
  for (const json& m : j) {
    out.push_back({m.value("container_id", 0u), m.value("host_id", 0u), m.value("size", 0u)});
  }
  return out;
}

json PortsToJson(const std::vector<PublishedPort>& ports) {
  json out = json::array();
  for (const PublishedPort& p : ports) {
    out.push_back({{"host_ip", p.host_ip},
                   {"host_port", p.host_port},
                   {"container_port", p.container_port},
                   {"protocol", p.protocol}});
  }
  return out;
}

std::vector<PublishedPort> PortsFromJson(const json& j) {
  std::vector<PublishedPort> out;
  for (const json& p : j) {
    out.push_back({p.value("host_ip", ""), p.value("host_port", 0u), p.value("container_port", 0u),
                   p.value("protocol", "tcp")});
  }
  return out;
}

json EndpointToJson(const NetworkEndpoint& e) {
  return {{"network", e.network},
          {"ip_address", e.ip_address},
          {"prefix_length", e.prefix_length},
          {"gateway", e.gateway},
          {"mac_address", e.mac_address},
          {"netns_path", e.netns_path},
          {"hosts_path", e.hosts_path},
          {"resolv_conf_path", e.resolv_conf_path}};
}

NetworkEndpoint EndpointFromJson(const json& j) {
  NetworkEndpoint e;
  e.network = j.value("network", "");
  e.ip_address = j.value("ip_address", "");
  e.prefix_length = j.value("prefix_length", 0);
  e.gateway = j.value("gateway", "");
  e.mac_address = j.value("mac_address", "");
  e.netns_path = j.value("netns_path", "");
  e.hosts_path = j.value("hosts_path", "");
  e.resolv_conf_path = j.value("resolv_conf_path", "");
  return e;
}

ContainerState StateFromName(const std::string& name) {
  if (name == "running") return ContainerState::kRunning;
  if (name == "paused") return ContainerState::kPaused;
  if (name == "exited") return ContainerState::kExited;
  return ContainerState::kCreated;
}

absl::string_view EnvKey(absl::string_view entry) { return entry.substr(0, entry.find('=')); }

}  // namespace

bool UsesNetworkService(absl::string_view network_mode) {
  return !network_mode.empty() && network_mode != "none" && network_mode != "private" &&
         network_mode != "host" && !absl::StartsWith(network_mode, "container:");
}

absl::string_view ContainerStateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return "created";
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kPaused:
      return "paused";
    case ContainerState::kExited:
      return "exited";
  }
  return "unknown";
}

std::string SerializeContainerRecord(const ContainerRecord& r) {
  const ContainerConfig& c = r.config;
  json config{{"image", c.image},
              {"args", c.args},
              {"env", c.env},
              {"working_dir", c.working_dir},
              {"hostname", c.hostname},
              {"mounts", MountsToJson(c.mounts)},
              {"limits",
               {{"memory_bytes", c.limits.memory_bytes},
                {"cpu_quota_us", c.limits.cpu_quota_us},
                {"cpu_period_us", c.limits.cpu_period_us},
                {"pids_limit", c.limits.pids_limit},
                {"cpuset_cpus", c.limits.cpuset_cpus}}},
              {"network_mode", c.network_mode},
              {"ports", PortsToJson(c.ports)},
              {"labels", c.labels},
              {"tty", c.tty},
              {"stdin_open", c.stdin_open},
              {"auto_remove", c.auto_remove},
              {"read_only_rootfs", c.read_only_rootfs},
              {"init", c.init},
              {"user", c.user},
              {"cap_add", c.cap_add},
              {"cap_drop", c.cap_drop},
              {"privileged", c.privileged},
              {"seccomp_profile", c.seccomp_profile},
              {"userns",
               {{"mode", c.userns.mode},
                {"uid_mappings", MappingsToJson(c.userns.uid_mappings)},
                {"gid_mappings", MappingsToJson(c.userns.gid_mappings)}}},
              {"ipc_mode", c.ipc_mode},
              {"pid_mode", c.pid_mode},
              {"init_prompt", c.init_prompt},
              {"stop_signal", c.stop_signal},
              {"stop_timeout_seconds", c.stop_timeout_seconds}};
  json j{{"id", r.id},
         {"name", r.name},
         {"config", config},
         {"state", std::string(ContainerStateName(r.state))},
         {"image_id", r.image_id},
         {"process_args", r.process_args},
         {"process_env", r.process_env},
         {"process_cwd", r.process_cwd},
         {"rootfs_mounts", MountsToJson(r.rootfs_mounts)},
         {"pid", r.pid},
         {"shim_pid", r.shim_pid},
         {"shim_start_ticks", r.shim_start_ticks},
         {"exit", json::parse(SerializeExitRecord(r.exit))},
         {"start_error", r.start_error},
         {"created_unix_nanos", r.created_unix_nanos},
         {"started_unix_nanos", r.started_unix_nanos},
         {"cgroup_path", r.cgroup_path},
         {"extra_networks", r.extra_networks}};
  if (r.network) j["network"] = EndpointToJson(*r.network);
  return j.dump(2);
}

absl::StatusOr<ContainerRecord> ParseContainerRecord(absl::string_view text) {
  try {
    json j = json::parse(text);
    ContainerRecord r;
    r.id = j.at("id").get<std::string>();
    r.name = j.value("name", "");
    const json& c = j.at("config");
    r.config.image = c.value("image", "");
    r.config.args = c.value("args", std::vector<std::string>{});
    r.config.env = c.value("env", std::vector<std::string>{});
    r.config.working_dir = c.value("working_dir", "");
    r.config.hostname = c.value("hostname", "");
    if (c.contains("mounts")) r.config.mounts = MountsFromJson(c.at("mounts"));
    if (c.contains("limits")) {
      const json& l = c.at("limits");
      r.config.limits.memory_bytes = l.value("memory_bytes", int64_t{0});
      r.config.limits.cpu_quota_us = l.value("cpu_quota_us", int64_t{0});
      r.config.limits.cpu_period_us = l.value("cpu_period_us", int64_t{0});
      r.config.limits.pids_limit = l.value("pids_limit", int64_t{0});
      r.config.limits.cpuset_cpus = l.value("cpuset_cpus", "");
    }
    r.config.network_mode = c.value("network_mode", "");
    if (c.contains("ports")) r.config.ports = PortsFromJson(c.at("ports"));
    r.config.labels = c.value("labels", std::map<std::string, std::string>{});
    r.config.tty = c.value("tty", false);
    r.config.stdin_open = c.value("stdin_open", false);
    r.config.auto_remove = c.value("auto_remove", false);
    r.config.read_only_rootfs = c.value("read_only_rootfs", false);
    r.config.init = c.value("init", false);
    r.config.user = c.value("user", "");
    r.config.cap_add = c.value("cap_add", std::vector<std::string>{});
    r.config.cap_drop = c.value("cap_drop", std::vector<std::string>{});
    r.config.privileged = c.value("privileged", false);
    r.config.seccomp_profile = c.value("seccomp_profile", "");
    if (c.contains("userns")) {
      const json& u = c.at("userns");
      r.config.userns.mode = u.value("mode", "");
      if (u.contains("uid_mappings")) {
        r.config.userns.uid_mappings = MappingsFromJson(u.at("uid_mappings"));
      }
      if (u.contains("gid_mappings")) {
        r.config.userns.gid_mappings = MappingsFromJson(u.at("gid_mappings"));
      }
    }
    r.config.ipc_mode = c.value("ipc_mode", "");
    r.config.pid_mode = c.value("pid_mode", "");
    r.config.init_prompt = c.value("init_prompt", "");
    r.config.stop_signal = c.value("stop_signal", 0);
    r.config.stop_timeout_seconds = c.value("stop_timeout_seconds", 0);
    r.state = StateFromName(j.value("state", "created"));
    r.image_id = j.value("image_id", "");
    r.process_args = j.value("process_args", std::vector<std::string>{});
    r.process_env = j.value("process_env", std::vector<std::string>{});
    r.process_cwd = j.value("process_cwd", "/");
    if (j.contains("rootfs_mounts")) r.rootfs_mounts = MountsFromJson(j.at("rootfs_mounts"));
    r.pid = j.value("pid", 0);
    r.shim_pid = j.value("shim_pid", 0);
    r.shim_start_ticks = j.value("shim_start_ticks", uint64_t{0});
    if (j.contains("exit")) {
      auto exit = ParseExitRecord(j.at("exit").dump());
      if (!exit.ok()) return exit.status();
      r.exit = *exit;
    }
    r.start_error = j.value("start_error", "");
    r.created_unix_nanos = j.value("created_unix_nanos", int64_t{0});
    r.started_unix_nanos = j.value("started_unix_nanos", int64_t{0});
    r.cgroup_path = j.value("cgroup_path", "");
    if (j.contains("network")) r.network = EndpointFromJson(j.at("network"));
    r.extra_networks = j.value("extra_networks", std::vector<std::string>{});
    return r;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("container record: ", e.what()));
  }
}

namespace {

// Docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (we allow a single character too).
absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 128 && absl::ascii_isalnum(name[0]);
  for (char ch : name) {
    ok = ok && (absl::ascii_isalnum(ch) || ch == '_' || ch == '.' || ch == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", what, " name \"", name,
                     "\": use letters, digits, '_', '.' and '-', starting with a letter or digit"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateContainerName(absl::string_view name) {
  return ValidateName("container", name);
}

absl::Status ValidateVolumeName(absl::string_view name) { return ValidateName("volume", name); }

absl::Status ValidateHostname(absl::string_view hostname) {
  bool ok = !hostname.empty() && hostname.size() <= 64 && hostname.front() != '-' &&
            hostname.front() != '.';
  for (char ch : hostname) ok = ok && (absl::ascii_isalnum(ch) || ch == '-' || ch == '.');
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid hostname \"", hostname, "\": use up to 64 letters, digits, '-' and '.'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateConfig(const ContainerConfig& config) {
  if (config.image.empty()) return absl::InvalidArgumentError("no image given");
  for (const std::string& entry : config.env) {
    if (entry.empty() || entry.front() == '=' || entry.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid environment entry \"", entry, "\": want KEY=VALUE"));
    }
  }
  for (const std::string& arg : config.args) {
    if (arg.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("command argument contains a NUL byte");
    }
  }
  if (!config.working_dir.empty() && config.working_dir.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid working directory \"", config.working_dir, "\": must be an absolute path"));
  }
  if (!config.hostname.empty()) {
    if (absl::Status s = ValidateHostname(config.hostname); !s.ok()) return s;
  }
  for (const auto& [flag, mode] :
       {std::pair<const char*, const std::string&>{"--network", config.network_mode},
        {"--ipc", config.ipc_mode},
        {"--pid", config.pid_mode}}) {
    bool known = mode.empty() || mode == "private" || mode == "host" ||
                 absl::StartsWith(mode, "container:") ||
                 (std::string(flag) == "--ipc" && mode == "shareable") ||
                 std::string(flag) == "--network";  // Network names are the network service's.
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid ", flag, " \"", mode, "\": want private, host or container:NAME"));
    }
  }
  if (!config.ports.empty() && !UsesNetworkService(config.network_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "published ports need a bridge network: --network \"",
        config.network_mode.empty() ? "none" : config.network_mode, "\" has no ports to publish"));
  }
  for (const PublishedPort& port : config.ports) {
    if (port.host_port > 65535 || port.container_port == 0 || port.container_port > 65535 ||
        (port.protocol != "tcp" && port.protocol != "udp")) {
      return absl::InvalidArgumentError(absl::StrCat("invalid published port ", port.host_port, ":",
                                                     port.container_port, "/", port.protocol,
                                                     ": want ports 1-65535 and tcp or udp"));
    }
  }
  if (IsSeccompProfileJson(config.seccomp_profile)) {
    if (auto profile = ParseSeccompProfile(config.seccomp_profile); !profile.ok()) {
      return profile.status();
    }
  } else if (!config.seccomp_profile.empty() && config.seccomp_profile != "default" &&
             config.seccomp_profile != "unconfined") {
    return absl::InvalidArgumentError(
        absl::StrCat("seccomp profile \"", config.seccomp_profile,
                     "\" is not supported: use default, unconfined or a JSON profile"));
  }
  if (absl::Status s = ValidateUserNamespace(config.userns); !s.ok()) return s;
  for (const MountSpec& m : config.mounts) {
    if (m.destination.empty() || m.destination.front() != '/' || m.destination == "/") {
      return absl::InvalidArgumentError(absl::StrCat("invalid mount destination \"", m.destination,
                                                     "\": want an absolute path below /"));
    }
    if (m.type == "volume") {
      if (absl::Status s = ValidateVolumeName(m.source); !s.ok()) return s;
    } else if (m.type == "bind") {
      if (m.source.empty() || m.source.front() != '/') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid bind source \"", m.source, "\": want an absolute host path"));
      }
    } else if (m.type != "tmpfs") {
      return absl::InvalidArgumentError(absl::StrCat("invalid mount type \"", m.type, "\" for \"",
                                                     m.destination,
                                                     "\": want bind, volume or tmpfs"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolvedProcess> ResolveProcess(const ContainerConfig& config,
                                               const ImageRunDefaults& image,
                                               absl::string_view hostname) {
  ResolvedProcess process;
  process.args = image.entrypoint;
  const std::vector<std::string>& cmd = config.args.empty() ? image.cmd : config.args;
  process.args.insert(process.args.end(), cmd.begin(), cmd.end());
  if (process.args.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no command given and image \"", config.image, "\" has none"));
  }

  // Later entries win; the order of first appearance is kept.
  std::vector<std::string> env;
  auto set = [&env](const std::string& entry) {
    // "KEY" without '=' is Docker's "take it from the client"; the client resolves that.
    absl::string_view key = EnvKey(entry);
    for (std::string& existing : env) {
      if (EnvKey(existing) == key) {
        existing = entry;
        return;
      }
    }
    env.push_back(entry);
  };
  set(kDefaultPath);
  set(absl::StrCat("HOSTNAME=", hostname));
  for (const std::string& entry : image.env) set(entry);
  for (const std::string& entry : config.env) set(entry);
  process.env = std::move(env);

  process.cwd = !config.working_dir.empty()  ? config.working_dir
                : !image.working_dir.empty() ? image.working_dir
                                             : "/";
  return process;
}

absl::Status ValidateUserNamespace(const UserNamespaceConfig& userns) {
  const std::string& mode = userns.mode;
  bool mapped = !userns.uid_mappings.empty() || !userns.gid_mappings.empty();
  if (mode.empty() || mode == "host") {
    if (!mapped) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("uid/gid mappings need --userns private or map, not \"",
                     mode.empty() ? "host" : mode, "\""));
  }
  if (mode == "private") {
    if (!mapped) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "--userns=private picks its own id range; give --uidmap/--gidmap instead");
  }
  if (mode != "map") {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --userns \"", mode, "\": want host, private or a --uidmap"));
  }
  for (const auto& [what, list] :
       {std::pair<const char*, const std::vector<IdMapping>*>{"uid", &userns.uid_mappings},
        {"gid", &userns.gid_mappings}}) {
    if (list->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("a user namespace needs ", what, " mappings"));
    }
    if (list->size() > 340) {  // The kernel's limit on lines of uid_map.
      return absl::InvalidArgumentError(absl::StrCat("more than 340 ", what, " mappings"));
    }
    for (size_t i = 0; i < list->size(); ++i) {
      const IdMapping& m = (*list)[i];
      std::string shown =
          absl::StrCat(what, " mapping ", m.container_id, ":", m.host_id, ":", m.size);
      if (m.size == 0 || uint64_t{m.container_id} + m.size > (uint64_t{1} << 32) - 1 ||
          uint64_t{m.host_id} + m.size > (uint64_t{1} << 32) - 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invalid ", shown, ": size must be at least 1 and the ranges below 2^32-1"));
      }
      for (size_t k = 0; k < i; ++k) {
        const IdMapping& o = (*list)[k];
        bool inside =
            m.container_id < o.container_id + o.size && o.container_id < m.container_id + m.size;
        bool outside = m.host_id < o.host_id + o.size && o.host_id < m.host_id + m.size;
        if (inside || outside) {
          return absl::InvalidArgumentError(absl::StrCat("invalid ", shown, ": overlaps ", what,
                                                         " mapping ", o.container_id, ":",
                                                         o.host_id, ":", o.size));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> PickUserNamespaceRange(const std::vector<IdMapping>& used) {
  for (uint64_t base = kUserNamespaceBase; base + kUserNamespaceSize <= (uint64_t{1} << 32) - 1;
       base += kUserNamespaceSize) {
    bool free = true;
    for (const IdMapping& m : used) {
      if (base < uint64_t{m.host_id} + m.size && m.host_id < base + kUserNamespaceSize) {
        free = false;
        break;
      }
    }
    if (free) return static_cast<uint32_t>(base);
  }
  return absl::ResourceExhaustedError("no free range of host ids for --userns=private");
}

}  // namespace nodeagent::runtime
