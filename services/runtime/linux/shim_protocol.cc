#include "services/runtime/linux/shim_protocol.h"

#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"

namespace nodeagent::runtime {
namespace {

using nlohmann::json;

json MountToJson(const ShimMount& m) {
  json j{{"type", m.type},
         {"source", m.source},
         {"destination", m.destination},
         {"options", m.options}};
  if (!m.source_mount_ns.empty()) j["source_mount_ns"] = m.source_mount_ns;
  return j;
}

ShimMount MountFromJson(const json& j) {
  ShimMount m;
  m.type = j.value("type", "");
  m.source = j.value("source", "");
  m.destination = j.value("destination", "");
  m.options = j.value("options", std::vector<std::string>{});
  m.source_mount_ns = j.value("source_mount_ns", "");
  return m;
}

std::vector<ShimMount> MountsFromJson(const json& j, const char* key) {
  std::vector<ShimMount> out;
  if (j.contains(key)) {
    for (const json& m : j.at(key)) out.push_back(MountFromJson(m));
  }
  return out;
}

json NamespacesToJson(const std::vector<ShimNamespace>& list) {
  json out = json::array();
  for (const ShimNamespace& ns : list) out.push_back(json{{"type", ns.type}, {"path", ns.path}});
  return out;
}

json MappingsToJson(const std::vector<ShimIdMapping>& list) {
  json out = json::array();
  for (const ShimIdMapping& m : list) {
    out.push_back(json{{"container_id", m.container_id}, {"host_id", m.host_id}, {"size", m.size}});
  }
  return out;
}

std::vector<ShimIdMapping> MappingsFromJson(const json& j, const char* key) {
  std::vector<ShimIdMapping> out;
  if (!j.contains(key)) return out;
  for (const json& m : j.at(key)) {
    out.push_back({m.at("container_id").get<uint32_t>(), m.at("host_id").get<uint32_t>(),
                   m.at("size").get<uint32_t>()});
  }
  return out;
}

template <typename T>
void SetIfPresent(const json& j, const char* key, std::optional<T>& out) {
  if (j.contains(key) && !j.at(key).is_null()) out = j.at(key).get<T>();
}

}  // namespace

std::vector<ShimNamespace> DefaultNamespaces() {
  return {{"pid", ""}, {"mnt", ""}, {"uts", ""}, {"ipc", ""}, {"net", ""}, {"cgroup", ""}};
}

absl::StatusOr<std::vector<ShimNamespace>> EffectiveNamespaces(const ShimConfig& config) {
  if (!config.namespaces.has_value()) return DefaultNamespaces();
  static const std::set<std::string> kKnown = {"pid", "net", "ipc", "uts", "mnt", "cgroup", "user"};
  std::set<std::string> seen;
  bool mnt_new = false;
  for (const ShimNamespace& ns : *config.namespaces) {
    if (!kKnown.contains(ns.type)) {
      return absl::InvalidArgumentError(absl::StrCat("namespace type \"", ns.type,
                                                     "\": not one of pid, net, ipc, uts, mnt, "
                                                     "cgroup, user"));
    }
    if (!seen.insert(ns.type).second) {
      return absl::InvalidArgumentError(absl::StrCat("namespace \"", ns.type, "\" listed twice"));
    }
    if (!ns.path.empty() && ns.path[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("namespace \"", ns.type, "\": path \"", ns.path, "\" is not absolute"));
    }
    if (ns.type == "mnt") mnt_new = ns.path.empty();
    if (ns.type == "user" && ns.path.empty() &&
        (config.uid_mappings.empty() || config.gid_mappings.empty())) {
      return absl::InvalidArgumentError("a new user namespace needs uid_mappings and gid_mappings");
    }
  }
  if (!mnt_new) {
    return absl::InvalidArgumentError("namespace \"mnt\" must be listed, new (empty path)");
  }
  return *config.namespaces;
}

absl::Status WarmStartable(const ShimConfig& config) {
  NA_ASSIGN_OR_RETURN(std::vector<ShimNamespace> namespaces, EffectiveNamespaces(config));
  std::set<std::string> fresh, joined;
  for (const ShimNamespace& ns : namespaces) (ns.path.empty() ? fresh : joined).insert(ns.type);
  for (const char* type : {"pid", "mnt", "uts", "cgroup"}) {
    if (!fresh.contains(type)) {
      return absl::FailedPreconditionError(absl::StrCat("the ", type, " namespace is not new"));
    }
  }
  for (const char* type : {"net", "ipc"}) {
    if (!fresh.contains(type) && !joined.contains(type)) {
      return absl::FailedPreconditionError(absl::StrCat("the host's ", type, " namespace"));
    }
  }
  if (fresh.contains("user") || joined.contains("user")) {
    return absl::FailedPreconditionError("a user namespace");
  }
  for (const ShimMount& m : config.mounts) {
    if (!m.source_mount_ns.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("a bind from ", m.source_mount_ns));
    }
    for (const std::string& option : m.options) {
      if (option == "shared" || option == "rshared") {
        return absl::FailedPreconditionError(
            absl::StrCat("a ", option, " bind of \"", m.source, "\""));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ParseWarmGo(absl::string_view line) {
  absl::string_view bundle = line;
  if (!absl::ConsumePrefix(&bundle, "go ") || !absl::ConsumeSuffix(&bundle, "\n") ||
      bundle.empty() || bundle[0] != '/' || absl::StrContains(bundle, '\n')) {
    return absl::InvalidArgumentError(
        absl::StrCat("control pipe: want \"go <absolute bundle path>\", got \"",
                     absl::CHexEscape(line.substr(0, 200)), "\""));
  }
  return std::string(bundle);
}

absl::StatusOr<ShimConfig> LoadShimConfig(const std::string& bundle) {
  std::string path = absl::StrCat(bundle, "/", kShimConfigFile);
  NA_ASSIGN_OR_RETURN(std::string text, linux::ReadFile(path));
  NA_ASSIGN_OR_RETURN(ShimConfig config, ParseShimConfig(text));
  if (config.bundle.empty()) config.bundle = bundle;
  if (config.bundle != bundle) {
    return absl::InvalidArgumentError(
        absl::StrCat("config bundle \"", config.bundle, "\" is not --bundle \"", bundle, "\""));
  }
  return config;
}

std::string SerializeShimConfig(const ShimConfig& c) {
  json rootfs = json::array();
  for (const ShimMount& m : c.rootfs_mounts) rootfs.push_back(MountToJson(m));
  json mounts = json::array();
  for (const ShimMount& m : c.mounts) mounts.push_back(MountToJson(m));
  json j{{"id", c.id},
         {"bundle", c.bundle},
         {"rootfs_mounts", rootfs},
         {"readonly_rootfs", c.readonly_rootfs},
         {"mounts", mounts},
         {"hostname", c.hostname},
         {"args", c.args},
         {"env", c.env},
         {"cwd", c.cwd},
         {"cgroup_dirs", c.cgroup_dirs},
         {"uid_mappings", MappingsToJson(c.uid_mappings)},
         {"gid_mappings", MappingsToJson(c.gid_mappings)},
         {"tty", c.tty},
         {"stdin_open", c.stdin_open},
         {"tty_rows", c.tty_rows},
         {"tty_cols", c.tty_cols},
         {"init", c.init},
         {"init_prompt", c.init_prompt},
         {"user", c.user},
         {"privileged", c.privileged},
         {"cap_add", c.cap_add},
         {"cap_drop", c.cap_drop},
         {"seccomp", c.seccomp}};
  if (c.namespaces.has_value()) j["namespaces"] = NamespacesToJson(*c.namespaces);
  if (c.no_new_privs.has_value()) j["no_new_privs"] = *c.no_new_privs;
  if (c.masked_paths.has_value()) j["masked_paths"] = *c.masked_paths;
  if (c.readonly_paths.has_value()) j["readonly_paths"] = *c.readonly_paths;
  return j.dump(2);
}

absl::StatusOr<ShimConfig> ParseShimConfig(absl::string_view text) {
  try {
    json j = json::parse(text);
    ShimConfig c;
    c.id = j.at("id").get<std::string>();
    c.bundle = j.at("bundle").get<std::string>();
    c.rootfs_mounts = MountsFromJson(j, "rootfs_mounts");
    c.readonly_rootfs = j.value("readonly_rootfs", false);
    c.mounts = MountsFromJson(j, "mounts");
    c.hostname = j.value("hostname", "");
    c.args = j.at("args").get<std::vector<std::string>>();
    c.env = j.value("env", std::vector<std::string>{});
    c.cwd = j.value("cwd", "/");
    c.cgroup_dirs = j.value("cgroup_dirs", std::vector<std::string>{});
    if (j.contains("namespaces") && !j.at("namespaces").is_null()) {
      std::vector<ShimNamespace> list;
      for (const json& ns : j.at("namespaces")) {
        list.push_back({ns.at("type").get<std::string>(), ns.value("path", "")});
      }
      c.namespaces = std::move(list);
    }
    c.uid_mappings = MappingsFromJson(j, "uid_mappings");
    c.gid_mappings = MappingsFromJson(j, "gid_mappings");
    c.tty = j.value("tty", false);
    c.stdin_open = j.value("stdin_open", false);
    c.tty_rows = j.value("tty_rows", uint16_t{0});
    c.tty_cols = j.value("tty_cols", uint16_t{0});
    c.init = j.value("init", false);
    c.init_prompt = j.value("init_prompt", "");
    c.user = j.value("user", "");
    c.privileged = j.value("privileged", false);
    c.cap_add = j.value("cap_add", std::vector<std::string>{});
    c.cap_drop = j.value("cap_drop", std::vector<std::string>{});
    c.seccomp = j.value("seccomp", "");
    SetIfPresent(j, "no_new_privs", c.no_new_privs);
    SetIfPresent(j, "masked_paths", c.masked_paths);
    SetIfPresent(j, "readonly_paths", c.readonly_paths);
    if (c.args.empty()) return absl::InvalidArgumentError("shim config: args is empty");
    return c;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("shim config: ", e.what()));
  }
}

std::string SerializeExitRecord(const ExitRecord& r) {
  json j{{"exit_code", r.exit_code},
         {"signal", r.signal},
         {"oom_killed", r.oom_killed},
         {"finished_unix_nanos", r.finished_unix_nanos}};
  return j.dump();
}

absl::StatusOr<ExitRecord> ParseExitRecord(absl::string_view text) {
  try {
    json j = json::parse(text);
    ExitRecord r;
    r.exit_code = j.at("exit_code").get<int>();
    r.signal = j.value("signal", 0);
    r.oom_killed = j.value("oom_killed", false);
    r.finished_unix_nanos = j.value("finished_unix_nanos", int64_t{0});
    return r;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("exit record: ", e.what()));
  }
}

std::string SerializeExecProcess(const ShimExecProcess& p) {
  json j{{"args", p.args},         {"env", p.env},           {"cwd", p.cwd},
         {"user", p.user},         {"tty", p.tty},           {"stdin_open", p.stdin_open},
         {"tty_rows", p.tty_rows}, {"tty_cols", p.tty_cols}, {"privileged", p.privileged}};
  return j.dump(2);
}

absl::StatusOr<ShimExecProcess> ParseExecProcess(absl::string_view text) {
  try {
    json j = json::parse(text);
    ShimExecProcess p;
    p.args = j.at("args").get<std::vector<std::string>>();
    p.env = j.value("env", std::vector<std::string>{});
    p.cwd = j.value("cwd", "");
    p.user = j.value("user", "");
    p.tty = j.value("tty", false);
    p.stdin_open = j.value("stdin_open", false);
    p.tty_rows = j.value("tty_rows", uint16_t{0});
    p.tty_cols = j.value("tty_cols", uint16_t{0});
    p.privileged = j.value("privileged", false);
    if (p.args.empty()) return absl::InvalidArgumentError("exec process: args is empty");
    return p;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("exec process: ", e.what()));
  }
}

std::string EncodeAttachFrame(uint8_t type, absl::string_view payload) {
  std::string out;
  out.reserve(kAttachHeaderSize + payload.size());
  uint32_t n = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

std::string EncodeResizeFrame(uint16_t rows, uint16_t cols) {
  const char payload[4] = {static_cast<char>(rows >> 8), static_cast<char>(rows & 0xff),
                           static_cast<char>(cols >> 8), static_cast<char>(cols & 0xff)};
  return EncodeAttachFrame(kAttachResize, absl::string_view(payload, 4));
}

absl::StatusOr<std::pair<uint16_t, uint16_t>> DecodeResize(absl::string_view payload) {
  if (payload.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("resize frame: payload of ", payload.size(), " bytes, want 4"));
  }
  auto byte = [&](size_t i) { return static_cast<uint16_t>(static_cast<uint8_t>(payload[i])); };
  return std::make_pair(static_cast<uint16_t>(byte(0) << 8 | byte(1)),
                        static_cast<uint16_t>(byte(2) << 8 | byte(3)));
}

absl::StatusOr<std::optional<AttachFrame>> AttachFrameReader::Next() {
  size_t available = buffer_.size() - offset_;
  if (available < kAttachHeaderSize) return std::nullopt;
  const auto* h = reinterpret_cast<const uint8_t*>(buffer_.data() + offset_);
  uint32_t n = static_cast<uint32_t>(h[1]) << 24 | static_cast<uint32_t>(h[2]) << 16 |
               static_cast<uint32_t>(h[3]) << 8 | static_cast<uint32_t>(h[4]);
  if (n > kMaxAttachPayload) {
    return absl::InvalidArgumentError(
        absl::StrCat("attach frame of ", n, " bytes (at most ", kMaxAttachPayload, ")"));
  }
  if (available < kAttachHeaderSize + n) return std::nullopt;
  AttachFrame frame;
  frame.type = h[0];
  frame.payload = buffer_.substr(offset_ + kAttachHeaderSize, n);
  offset_ += kAttachHeaderSize + n;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ > 64 * 1024) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  return frame;
}

}  // namespace nodeagent::runtime
