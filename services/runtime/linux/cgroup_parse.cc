#include "services/runtime/linux/cgroup_parse.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/mountinfo.h"

namespace nodeagent::runtime {
namespace {

// The v1 controllers of /proc/cgroups (Linux 6.x).
bool IsV1Controller(absl::string_view name) {
  static constexpr absl::string_view kControllers[] = {
      "blkio", "cpu",     "cpuacct",  "cpuset",     "devices", "freezer", "hugetlb", "memory",
      "misc",  "net_cls", "net_prio", "perf_event", "pids",    "rdma",    "debug"};
  for (absl::string_view c : kControllers) {
    if (name == c) return true;
  }
  return false;
}

bool IsBelow(absl::string_view path, absl::string_view root) {
  if (!absl::StartsWith(path, root)) return false;
  return path.size() > root.size() && (root.back() == '/' || path[root.size()] == '/');
}

}  // namespace

std::vector<std::string> ParseCgroupControllers(absl::string_view text) {
  return absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
}

absl::StatusOr<std::map<std::string, uint64_t>> ParseFlatKeyed(absl::string_view text) {
  std::map<std::string, uint64_t> out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t value = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[1], &value)) {
      return absl::DataLossError(
          absl::StrCat("line ", line_number, ": expected \"key value\", got \"", line, "\""));
    }
    out[std::string(fields[0])] = value;
  }
  return out;
}

absl::StatusOr<std::vector<pid_t>> ParseCgroupProcs(absl::string_view text) {
  std::vector<pid_t> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(line, &pid) || pid <= 0) {
      return absl::DataLossError(absl::StrCat("not a pid: \"", line, "\""));
    }
    out.push_back(pid);
  }
  return out;
}

absl::StatusOr<int64_t> ParseCgroupLimit(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text == "max") return -1;
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < 0) {
    return absl::DataLossError(absl::StrCat("not a limit: \"", text, "\""));
  }
  return value;
}

absl::StatusOr<std::map<std::string, std::string>> ParseCgroupV1Mounts(
    absl::string_view mountinfo, absl::string_view cgroup_root) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipWhitespace())) {
    // 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
    // Optional fields end at " - "; after it come fstype, source and super options.
    size_t dash = line.find(" - ");
    if (dash == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat("mountinfo line without \" - \": \"", line, "\""));
    }
    std::vector<absl::string_view> head = absl::StrSplit(line.substr(0, dash), ' ');
    std::vector<absl::string_view> tail =
        absl::StrSplit(line.substr(dash + 3), ' ', absl::SkipEmpty());
    if (head.size() < 6 || tail.size() < 3) {
      return absl::DataLossError(absl::StrCat("short mountinfo line: \"", line, "\""));
    }
    if (tail[0] != "cgroup") continue;
    std::string mount_point = linux::UnescapeMountInfoField(head[4]);
    if (!IsBelow(mount_point, cgroup_root)) continue;
    for (absl::string_view option : absl::StrSplit(tail[2], ',')) {
      // Super options mix mount options (rw, clone_children, release_agent=...) with the
      // names of the controllers the hierarchy holds.
      if (!IsV1Controller(option)) continue;
      // The first mount of a hierarchy wins; a bind of it elsewhere is the same hierarchy.
      out.emplace(std::string(option), mount_point);
    }
  }
  return out;
}

}  // namespace nodeagent::runtime
