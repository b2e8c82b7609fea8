#include "services/image/core/oci_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"

namespace nodeagent::image {
namespace {

using Json = nlohmann::json;

absl::Status BadField(absl::string_view field, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("image config: field \"", field, "\" must be ", want));
}

// Typed getters that never throw: a config may come from anywhere (later: a registry).
absl::StatusOr<std::string> GetString(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return BadField(key, "a string");
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> GetStrings(const Json& object, const char* key) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_array()) return BadField(key, "an array of strings");
  for (const Json& item : *it) {
    if (!item.is_string()) return BadField(key, "an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

absl::StatusOr<absl::Time> GetTime(const Json& object, const char* key) {
  NA_ASSIGN_OR_RETURN(std::string text, GetString(object, key));
  if (text.empty()) return absl::UnixEpoch();
  absl::StatusOr<absl::Time> time = ParseRfc3339(text);
  if (!time.ok()) return BadField(key, "an RFC 3339 time");
  return *time;
}

Json ConfigToJson(const ImageConfig& config) {
  Json out = Json::object();
  if (!config.env.empty()) out["Env"] = config.env;
  if (!config.entrypoint.empty()) out["Entrypoint"] = config.entrypoint;
  if (!config.cmd.empty()) out["Cmd"] = config.cmd;
  if (!config.working_dir.empty()) out["WorkingDir"] = config.working_dir;
  if (!config.user.empty()) out["User"] = config.user;
  if (!config.labels.empty()) out["Labels"] = config.labels;
  return out;
}

absl::StatusOr<ImageConfig> ConfigFromJson(const Json& json) {
  ImageConfig config;
  if (json.is_null()) return config;
  if (!json.is_object()) return BadField("config", "an object");
  NA_ASSIGN_OR_RETURN(config.env, GetStrings(json, "Env"));
  NA_ASSIGN_OR_RETURN(config.entrypoint, GetStrings(json, "Entrypoint"));
  NA_ASSIGN_OR_RETURN(config.cmd, GetStrings(json, "Cmd"));
  NA_ASSIGN_OR_RETURN(config.working_dir, GetString(json, "WorkingDir"));
  NA_ASSIGN_OR_RETURN(config.user, GetString(json, "User"));
  if (auto it = json.find("Labels"); it != json.end() && !it->is_null()) {
    if (!it->is_object()) return BadField("Labels", "an object of strings");
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) return BadField("Labels", "an object of strings");
      config.labels[key] = value.get<std::string>();
    }
  }
  return config;
}

constexpr int kMaxNesting = 64;

// Deepest [ / { nesting outside strings.
int NestingDepth(absl::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

absl::string_view HostOciArchitecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__i386__)
  return "386";
#elif defined(__arm__)
  return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
#error "unknown architecture: add its GOARCH name"
#endif
}

std::string FormatRfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", time, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseRfc3339(absl::string_view text) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(text), &time, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("time \"", text, "\": ", error));
  }
  return time;
}

std::string SerializeOciConfig(const OciImageConfig& config) {
  // nlohmann::json keeps object keys in a std::map, so dump() is already sorted.
  Json json = Json::object();
  json["created"] = FormatRfc3339(config.created);
  json["architecture"] = config.architecture;
  json["os"] = config.os;
  json["config"] = ConfigToJson(config.config);
  json["rootfs"] = {{"type", "layers"}, {"diff_ids", config.diff_ids}};
  Json history = Json::array();
  for (const OciHistoryEntry& entry : config.history) {
    Json item = {{"created", FormatRfc3339(entry.created)}};
    if (!entry.created_by.empty()) item["created_by"] = entry.created_by;
    if (!entry.comment.empty()) item["comment"] = entry.comment;
    if (entry.empty_layer) item["empty_layer"] = true;
    history.push_back(std::move(item));
  }
  json["history"] = std::move(history);
  // Invalid UTF-8 is replaced rather than thrown on; the id hashes exactly what is stored.
  return json.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

absl::StatusOr<OciImageConfig> ParseOciConfig(absl::string_view text) {
  // nlohmann's parser recurses once per nesting level; bound it before a hostile document
  // can exhaust the stack.
  if (NestingDepth(text) > kMaxNesting) {
    return absl::InvalidArgumentError(
        absl::StrCat("image config: nested deeper than ", kMaxNesting, " levels"));
  }
  Json json = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError("image config: not valid JSON");
  if (!json.is_object()) return BadField("(top level)", "an object");
  OciImageConfig config;
  NA_ASSIGN_OR_RETURN(config.created, GetTime(json, "created"));
  NA_ASSIGN_OR_RETURN(config.architecture, GetString(json, "architecture"));
  NA_ASSIGN_OR_RETURN(config.os, GetString(json, "os"));
  if (auto it = json.find("config"); it != json.end()) {
    NA_ASSIGN_OR_RETURN(config.config, ConfigFromJson(*it));
  }
  auto rootfs = json.find("rootfs");
  if (rootfs == json.end() || !rootfs->is_object()) return BadField("rootfs", "an object");
  NA_ASSIGN_OR_RETURN(std::string type, GetString(*rootfs, "type"));
  if (type != "layers") return BadField("rootfs.type", "\"layers\"");
  NA_ASSIGN_OR_RETURN(config.diff_ids, GetStrings(*rootfs, "diff_ids"));
  for (const std::string& diff_id : config.diff_ids) {
    if (!ParseSha256Digest(diff_id).ok()) return BadField("rootfs.diff_ids", "sha256 digests");
  }
  if (auto it = json.find("history"); it != json.end() && !it->is_null()) {
    if (!it->is_array()) return BadField("history", "an array");
    for (const Json& item : *it) {
      if (!item.is_object()) return BadField("history", "an array of objects");
      OciHistoryEntry entry;
      NA_ASSIGN_OR_RETURN(entry.created, GetTime(item, "created"));
      NA_ASSIGN_OR_RETURN(entry.created_by, GetString(item, "created_by"));
      NA_ASSIGN_OR_RETURN(entry.comment, GetString(item, "comment"));
      if (auto empty = item.find("empty_layer"); empty != item.end() && !empty->is_null()) {
        if (!empty->is_boolean()) return BadField("history.empty_layer", "a boolean");
        entry.empty_layer = empty->get<bool>();
      }
      config.history.push_back(std::move(entry));
    }
  }
  return config;
}

}  // namespace nodeagent::image
