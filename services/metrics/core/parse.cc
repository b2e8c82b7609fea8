#include "services/metrics/core/parse.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/linux/mountinfo.h"

namespace nodeagent::metrics {
namespace {

// "8:0" -> major, minor.
bool ParseDevice(absl::string_view text, uint32_t* major, uint32_t* minor) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(text, ':');
  return absl::SimpleAtoi(parts.first, major) && absl::SimpleAtoi(parts.second, minor);
}

BlockDeviceIo& DeviceEntry(std::vector<BlockDeviceIo>& devices, uint32_t major, uint32_t minor) {
  for (BlockDeviceIo& d : devices) {
    if (d.major == major && d.minor == minor) return d;
  }
  devices.push_back({major, minor});
  return devices.back();
}

}  // namespace

absl::StatusOr<uint64_t> ParseCgroupValue(absl::string_view text) {
  absl::string_view value = absl::StripAsciiWhitespace(text);
  if (value == "max") return kUnlimited;
  uint64_t out = 0;
  if (!absl::SimpleAtoi(value, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("not a number: \"", value, "\""));
  }
  return out;
}

void ForEachKeyedValue(absl::string_view text,
                       absl::FunctionRef<void(absl::string_view key, uint64_t value)> fn) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    absl::string_view line = text.substr(0, eol);
    text = eol == absl::string_view::npos ? absl::string_view() : text.substr(eol + 1);
    size_t space = line.find(' ');
    if (space == absl::string_view::npos) continue;
    uint64_t value = 0;
    if (absl::SimpleAtoi(line.substr(space + 1), &value)) fn(line.substr(0, space), value);
  }
}

absl::StatusOr<std::vector<BlockDeviceIo>> ParseBlkio(absl::string_view service_bytes,
                                                      absl::string_view serviced) {
  std::vector<BlockDeviceIo> devices;
  for (int pass = 0; pass < 2; ++pass) {
    absl::string_view text = pass == 0 ? service_bytes : serviced;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() == 2 && f[0] == "Total") continue;
      uint32_t major = 0, minor = 0;
      uint64_t value = 0;
      if (f.size() != 3 || !ParseDevice(f[0], &major, &minor) || !absl::SimpleAtoi(f[2], &value)) {
        return absl::InvalidArgumentError(absl::StrCat("blkio: bad line \"", line, "\""));
      }
      BlockDeviceIo& d = DeviceEntry(devices, major, minor);
      if (f[1] == "Read") {
        (pass == 0 ? d.read_bytes : d.reads) = value;
      } else if (f[1] == "Write") {
        (pass == 0 ? d.write_bytes : d.writes) = value;
      }
    }
  }
  return devices;
}

absl::StatusOr<std::vector<BlockDeviceIo>> ParseIoStat(absl::string_view text) {
  std::vector<BlockDeviceIo> devices;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    BlockDeviceIo d;
    if (f.empty() || !ParseDevice(f[0], &d.major, &d.minor)) {
      return absl::InvalidArgumentError(absl::StrCat("io.stat: bad line \"", line, "\""));
    }
    for (size_t i = 1; i < f.size(); ++i) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(f[i], '=');
      uint64_t value = 0;
      if (!absl::SimpleAtoi(kv.second, &value)) continue;
      if (kv.first == "rbytes") d.read_bytes = value;
      if (kv.first == "wbytes") d.write_bytes = value;
      if (kv.first == "rios") d.reads = value;
      if (kv.first == "wios") d.writes = value;
    }
    devices.push_back(d);
  }
  return devices;
}

absl::StatusOr<std::vector<InterfaceStats>> ParseNetDev(absl::string_view text) {
  std::vector<InterfaceStats> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    if (++line_no <= 2) continue;  // Headers.
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("net/dev: bad line \"", line, "\""));
    }
    InterfaceStats s;
    s.name = std::string(absl::StripAsciiWhitespace(line.substr(0, colon)));
    std::vector<absl::string_view> f =
        absl::StrSplit(line.substr(colon + 1), ' ', absl::SkipEmpty());
    uint64_t v[16] = {};
    if (f.size() < 16) {
      return absl::InvalidArgumentError(absl::StrCat("net/dev: short line \"", line, "\""));
    }
    for (size_t i = 0; i < 16; ++i) {
      if (!absl::SimpleAtoi(f[i], &v[i])) {
        return absl::InvalidArgumentError(absl::StrCat("net/dev: bad number in \"", line, "\""));
      }
    }
    s.rx_bytes = v[0];
    s.rx_packets = v[1];
    s.rx_errors = v[2];
    s.rx_dropped = v[3];
    s.tx_bytes = v[8];
    s.tx_packets = v[9];
    s.tx_errors = v[10];
    s.tx_dropped = v[11];
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<CpuTicks> ParseProcStatCpu(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.empty() || f[0] != "cpu") continue;
    uint64_t v[8] = {};
    for (size_t i = 0; i < 8 && i + 1 < f.size(); ++i) {
      if (!absl::SimpleAtoi(f[i + 1], &v[i])) {
        return absl::InvalidArgumentError(absl::StrCat("/proc/stat: bad cpu line \"", line, "\""));
      }
    }
    return CpuTicks{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
  }
  return absl::InvalidArgumentError("/proc/stat: no \"cpu\" line");
}

std::map<std::string, uint64_t> ParseMeminfo(absl::string_view text) {
  std::map<std::string, uint64_t> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line.substr(colon + 1), ' ', absl::SkipEmpty());
    uint64_t value = 0;
    if (f.empty() || !absl::SimpleAtoi(f[0], &value)) continue;
    if (f.size() > 1 && f[1] == "kB") value *= 1024;
    out[std::string(line.substr(0, colon))] = value;
  }
  return out;
}

absl::StatusOr<CgroupLayout> ParseCgroupLayout(absl::string_view mountinfo) {
  CgroupLayout layout;
  std::string v2_mount;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i) {
      if (f[i] == "-") {
        dash = i;
        break;
      }
    }
    if (dash == 0 || f.size() < dash + 4) continue;
    absl::string_view fstype = f[dash + 1];
    std::string mount_point = linux::UnescapeMountInfoField(f[4]);
    if (fstype == "cgroup2") {
      // On a hybrid host cgroup2 sits at .../unified; prefer the one at the cgroup root.
      if (v2_mount.empty() || !absl::EndsWith(mount_point, "/unified")) v2_mount = mount_point;
    } else if (fstype == "cgroup") {
      for (absl::string_view option : absl::StrSplit(f[dash + 3], ',')) {
        if (option == "rw" || option == "ro" || absl::StartsWith(option, "name=") ||
            option.find('=') != absl::string_view::npos) {
          continue;
        }
        layout.v1_mounts.emplace(std::string(option), mount_point);
      }
    }
  }
  if (layout.v1_mounts.count("memory") != 0) return layout;
  if (v2_mount.empty()) {
    return absl::NotFoundError("mountinfo: no cgroup v1 memory hierarchy and no cgroup2 mount");
  }
  layout.v1_mounts.clear();
  layout.unified = true;
  layout.unified_root = v2_mount;
  return layout;
}

std::string ContainerLabelName(absl::string_view key) {
  std::string out = "container_label_";
  out.reserve(out.size() + key.size());
  for (char c : key) out.push_back(absl::ascii_isalnum(c) || c == '_' ? c : '_');
  return out;
}

}  // namespace nodeagent::metrics
