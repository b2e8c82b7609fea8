#include "services/runtime/linux/shim_protocol.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace nodeagent::runtime {
namespace {

using nlohmann::json;

json MountToJson(const ShimMount& m) {
  return json{{"type", m.type},
              {"source", m.source},
              {"destination", m.destination},
              {"options", m.options}};
}

ShimMount MountFromJson(const json& j) {
  ShimMount m;
  m.type = j.value("type", "");
  m.source = j.value("source", "");
  m.destination = j.value("destination", "");
  m.options = j.value("options", std::vector<std::string>{});
  return m;
}

std::vector<ShimMount> MountsFromJson(const json& j, const char* key) {
  std::vector<ShimMount> out;
  if (j.contains(key)) {
    for (const json& m : j.at(key)) out.push_back(MountFromJson(m));
  }
  return out;
}

}  // namespace

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
         {"cgroup_dirs", c.cgroup_dirs}};
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

}  // namespace nodeagent::runtime
