#include "cmd/nodectl/run_flags.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace nodeagent::nodectl {

absl::StatusOr<int64_t> ParseMemoryBytes(absl::string_view text) {
  std::string value = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (!value.empty() && value.back() == 'b') value.pop_back();
  double multiplier = 1;
  if (!value.empty()) {
    switch (value.back()) {
      case 'k':
        multiplier = 1024.0;
        break;
      case 'm':
        multiplier = 1024.0 * 1024;
        break;
      case 'g':
        multiplier = 1024.0 * 1024 * 1024;
        break;
      case 't':
        multiplier = 1024.0 * 1024 * 1024 * 1024;
        break;
      default:
        break;
    }
    if (multiplier != 1) value.pop_back();
  }
  double number = 0;
  if (value.empty() || !absl::SimpleAtod(value, &number) || !std::isfinite(number)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid memory size \"", text, "\": want a number with k, m or g"));
  }
  double bytes = number * multiplier;
  if (bytes < 6 * 1024 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory limit \"", text, "\" is below the minimum of 6m"));
  }
  if (bytes > 9.0e18) {
    return absl::InvalidArgumentError(absl::StrCat("memory limit \"", text, "\" is absurd"));
  }
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<CpuQuota> CpuQuotaFromCpus(absl::string_view text, int host_cpus) {
  double cpus = 0;
  if (!absl::SimpleAtod(text, &cpus) || !std::isfinite(cpus) || cpus <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --cpus \"", text, "\": want a positive number like 0.5"));
  }
  if (cpus > host_cpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpus ", text, " is more than the ", host_cpus, " CPUs this host has"));
  }
  CpuQuota quota;
  quota.quota_us = static_cast<int64_t>(std::llround(cpus * quota.period_us));
  if (quota.quota_us < 1000) {
    return absl::InvalidArgumentError(absl::StrCat("--cpus ", text, " is below 0.01"));
  }
  return quota;
}

absl::StatusOr<CpuQuota> CpuQuotaFromPercent(int percent, int host_cpus) {
  if (percent <= 0 || percent > host_cpus * 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu-percent ", percent, " is outside 1..", host_cpus * 100));
  }
  CpuQuota quota;
  quota.quota_us = quota.period_us * percent / 100;
  return quota;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& entries) {
  std::map<std::string, std::string> labels;
  for (const std::string& entry : entries) {
    size_t eq = entry.find('=');
    std::string key = entry.substr(0, eq);
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label \"", entry, "\": want k=v"));
    }
    labels[key] = eq == std::string::npos ? "" : entry.substr(eq + 1);
  }
  return labels;
}

namespace {

absl::Status CheckDestination(absl::string_view flag, absl::string_view text,
                              absl::string_view destination) {
  if (destination.empty() || destination.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", flag, " \"", text, "\": the container path must be absolute"));
  }
  if (destination == "/") {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", flag, " \"", text, "\": cannot mount over /"));
  }
  return absl::OkStatus();
}

bool IsVolumeName(absl::string_view name) {
  if (name.empty() || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

constexpr absl::string_view kPropagations[] = {"private", "rprivate", "shared",
                                               "rshared", "slave",    "rslave"};

}  // namespace

absl::StatusOr<MountFlag> ParseVolumeFlag(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() < 2 || parts.size() > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid -v \"", text, "\": want SOURCE:DESTINATION[:ro]"));
  }
  MountFlag mount;
  mount.source = parts[0];
  mount.destination = parts[1];
  if (absl::Status s = CheckDestination("-v", text, mount.destination); !s.ok()) return s;
  if (absl::StartsWith(mount.source, "/")) {
    mount.type = "bind";
    mount.options = {"rbind", "rprivate"};
  } else if (IsVolumeName(mount.source)) {
    mount.type = "volume";
    mount.options = {"rbind", "rprivate"};
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid -v \"", text, "\": the source must be an absolute host path or a volume name"));
  }
  if (parts.size() == 3) {
    for (absl::string_view option : absl::StrSplit(parts[2], ',')) {
      if (option == "ro") {
        mount.options.push_back("ro");
      } else if (option == "rw") {
      } else if (std::find(std::begin(kPropagations), std::end(kPropagations), option) !=
                 std::end(kPropagations)) {
        mount.options[1] = std::string(option);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid -v \"", text, "\": unknown option \"", option, "\""));
      }
    }
  }
  return mount;
}

absl::StatusOr<MountFlag> ParseTmpfsFlag(absl::string_view text) {
  MountFlag mount;
  mount.type = "tmpfs";
  mount.source = "tmpfs";
  size_t colon = text.find(':');
  mount.destination = std::string(text.substr(0, colon));
  if (absl::Status s = CheckDestination("--tmpfs", text, mount.destination); !s.ok()) return s;
  mount.options = {"nosuid", "nodev"};
  if (colon != absl::string_view::npos) {
    for (absl::string_view option : absl::StrSplit(text.substr(colon + 1), ',')) {
      if (option.empty()) continue;
      mount.options.emplace_back(option);
    }
  }
  return mount;
}

absl::StatusOr<MountFlag> ParseMountFlag(absl::string_view text) {
  MountFlag mount;
  std::string propagation = "rprivate";
  bool readonly = false;
  std::vector<std::string> tmpfs_options;
  for (absl::string_view field : absl::StrSplit(text, ',')) {
    size_t eq = field.find('=');
    absl::string_view key = field.substr(0, eq);
    std::string value = eq == absl::string_view::npos ? "" : std::string(field.substr(eq + 1));
    if (key == "type") {
      mount.type = value;
    } else if (key == "src" || key == "source") {
      mount.source = value;
    } else if (key == "dst" || key == "destination" || key == "target") {
      mount.destination = value;
    } else if (key == "readonly" || key == "ro") {
      readonly = value.empty() || value == "true" || value == "1";
    } else if (key == "bind-propagation") {
      if (std::find(std::begin(kPropagations), std::end(kPropagations), value) ==
          std::end(kPropagations)) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid --mount \"", text, "\": bind-propagation \"", value,
                         "\" is not one of private, rprivate, shared, rshared, slave, rslave"));
      }
      propagation = value;
    } else if (key == "tmpfs-size") {
      auto bytes = ParseMemoryBytes(value);
      int64_t size = 0;
      if (!absl::SimpleAtoi(value, &size)) {
        if (!bytes.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("invalid --mount \"", text, "\": tmpfs-size \"", value, "\""));
        }
        size = *bytes;
      }
      tmpfs_options.push_back(absl::StrCat("size=", size));
    } else if (key == "tmpfs-mode") {
      tmpfs_options.push_back(absl::StrCat("mode=", value));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --mount \"", text, "\": unknown key \"", key, "\""));
    }
  }
  if (absl::Status s = CheckDestination("--mount", text, mount.destination); !s.ok()) return s;
  if (mount.type == "bind" || mount.type == "volume") {
    if (mount.source.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid --mount \"", text, "\": no src"));
    }
    if (mount.type == "bind" && !absl::StartsWith(mount.source, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --mount \"", text, "\": a bind src must be an absolute path"));
    }
    if (mount.type == "volume" && !IsVolumeName(mount.source)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --mount \"", text, "\": bad volume name \"", mount.source, "\""));
    }
    mount.options = {"rbind", propagation};
  } else if (mount.type == "tmpfs") {
    mount.source = "tmpfs";
    mount.options = {"nosuid", "nodev"};
    mount.options.insert(mount.options.end(), tmpfs_options.begin(), tmpfs_options.end());
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid --mount \"", text,
                                                   "\": type must be bind, volume or tmpfs, not \"",
                                                   mount.type, "\""));
  }
  if (readonly) mount.options.push_back("ro");
  return mount;
}

absl::StatusOr<IdMapFlag> ParseIdMapFlag(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  IdMapFlag m;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &m.container_id) ||
      !absl::SimpleAtoi(parts[1], &m.host_id) || !absl::SimpleAtoi(parts[2], &m.size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid id mapping \"", text, "\": want CONTAINER:HOST:SIZE, e.g. 0:100000:65536"));
  }
  if (m.size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid id mapping \"", text, "\": size 0"));
  }
  return m;
}

absl::StatusOr<std::string> ParseDetachKeys(absl::string_view text) {
  std::string keys;
  for (absl::string_view key : absl::StrSplit(text, ',')) {
    absl::string_view ctrl = key;
    if (absl::ConsumePrefix(&ctrl, "ctrl-") && ctrl.size() == 1) {
      char c = absl::ascii_tolower(ctrl[0]);
      if (c >= 'a' && c <= 'z') {
        keys.push_back(static_cast<char>(c - 'a' + 1));
        continue;
      }
      if (absl::string_view("@[\\]^_").find(c) != absl::string_view::npos) {
        keys.push_back(static_cast<char>(c & 0x1f));
        continue;
      }
    } else if (key.size() == 1) {
      keys.push_back(key[0]);
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --detach-keys \"", text, "\": key \"", key,
                     "\" is neither one character nor ctrl-<letter or @[\\]^_>"));
  }
  return keys;
}

}  // namespace nodeagent::nodectl
