#include "services/runtime/linux/seccomp_profile.h"

#include <errno.h>
#include <seccomp.h>  // Constants only: the library is linked where the filter is installed.

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace nodeagent::runtime {
namespace {

using nlohmann::json;

constexpr absl::string_view kOps[] = {"SCMP_CMP_NE",       "SCMP_CMP_LT", "SCMP_CMP_LE",
                                      "SCMP_CMP_EQ",       "SCMP_CMP_GE", "SCMP_CMP_GT",
                                      "SCMP_CMP_MASKED_EQ"};

std::vector<std::string> Strings(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return {};
  return j.at(key).get<std::vector<std::string>>();
}

void Filter(const json& j, const char* key, std::vector<std::string>& caps,
            std::vector<std::string>& arches) {
  if (!j.contains(key) || j.at(key).is_null()) return;
  caps = Strings(j.at(key), "caps");
  arches = Strings(j.at(key), "arches");
}

int ErrnoRet(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return -1;
  return j.at(key).get<int>();
}

}  // namespace

bool IsSeccompProfileJson(absl::string_view text) {
  absl::string_view stripped = absl::StripLeadingAsciiWhitespace(text);
  return !stripped.empty() && stripped.front() == '{';
}

absl::StatusOr<uint32_t> SeccompAction(absl::string_view name, int errno_ret) {
  if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (name == "SCMP_ACT_ERRNO") {
    return SCMP_ACT_ERRNO(static_cast<uint32_t>(errno_ret < 0 ? EPERM : errno_ret));
  }
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL_THREAD;
  if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (name == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  if (name == "SCMP_ACT_TRACE") {
    return SCMP_ACT_TRACE(static_cast<uint32_t>(errno_ret < 0 ? EPERM : errno_ret));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "action \"", name,
      "\": unknown (want SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_PROCESS, _KILL_THREAD, _TRAP, "
      "_LOG or _TRACE)"));
}

absl::StatusOr<SeccompProfile> ParseSeccompProfile(absl::string_view text) {
  auto bad = [](const std::string& where, const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat("seccomp profile: ", where, " ", s.message()));
  };
  try {
    json j = json::parse(text);
    if (!j.is_object()) return absl::InvalidArgumentError("seccomp profile: not a JSON object");
    SeccompProfile p;
    if (!j.contains("defaultAction")) {
      return absl::InvalidArgumentError("seccomp profile: no defaultAction");
    }
    p.default_action = j.at("defaultAction").get<std::string>();
    p.default_errno_ret = ErrnoRet(j, "defaultErrnoRet");
    if (auto a = SeccompAction(p.default_action, p.default_errno_ret); !a.ok()) {
      return bad("defaultAction", a.status());
    }
    p.architectures = Strings(j, "architectures");
    if (j.contains("syscalls") && !j.at("syscalls").is_null()) {
      size_t i = 0;
      for (const json& s : j.at("syscalls")) {
        const std::string where = absl::StrCat("syscalls[", i++, "]");
        SeccompRule rule;
        rule.names = Strings(s, "names");
        if (s.contains("name") && s.at("name").is_string()) {
          rule.names.push_back(s.at("name").get<std::string>());
        }
        if (rule.names.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("seccomp profile: ", where, ": no syscall names"));
        }
        if (!s.contains("action")) {
          return absl::InvalidArgumentError(
              absl::StrCat("seccomp profile: ", where, ": no action"));
        }
        rule.action = s.at("action").get<std::string>();
        rule.errno_ret = ErrnoRet(s, "errnoRet");
        if (auto a = SeccompAction(rule.action, rule.errno_ret); !a.ok()) {
          return bad(absl::StrCat(where, ".action"), a.status());
        }
        if (s.contains("args") && !s.at("args").is_null()) {
          for (const json& a : s.at("args")) {
            SeccompArg arg;
            arg.index = a.value("index", 0u);
            arg.value = a.value("value", uint64_t{0});
            arg.value_two = a.value("valueTwo", uint64_t{0});
            arg.op = a.value("op", "");
            if (arg.index > 5) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "seccomp profile: ", where, ": arg index ", arg.index, " (want 0-5)"));
            }
            if (std::find(std::begin(kOps), std::end(kOps), arg.op) == std::end(kOps)) {
              return absl::InvalidArgumentError(absl::StrCat("seccomp profile: ", where, ": op \"",
                                                             arg.op, "\": unknown operator"));
            }
            rule.args.push_back(std::move(arg));
          }
        }
        Filter(s, "includes", rule.include_caps, rule.include_arches);
        Filter(s, "excludes", rule.exclude_caps, rule.exclude_arches);
        p.syscalls.push_back(std::move(rule));
      }
    }
    return p;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("seccomp profile: ", e.what()));
  }
}

}  // namespace nodeagent::runtime
