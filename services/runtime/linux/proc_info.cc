#include "services/runtime/linux/proc_info.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/mountinfo.h"

namespace nodeagent::runtime {
absl::StatusOr<std::vector<NamespaceInode>> ReadOwnNamespaces() {
  return ReadNamespaces(::getpid());
}

absl::StatusOr<std::vector<NamespaceInode>> ReadNamespaces(int pid) {
  static constexpr const char* kTypes[] = {"mnt", "net",  "pid",    "uts",
                                           "ipc", "user", "cgroup", "time"};
  std::vector<NamespaceInode> out;
  for (const char* type : kTypes) {
    std::string path = absl::StrCat("/proc/", pid, "/ns/", type);
    char target[128];
    ssize_t n = ::readlink(path.c_str(), target, sizeof(target) - 1);
    if (n < 0) {
      if (errno == ENOENT && out.empty() && !linux::PathExists(absl::StrCat("/proc/", pid))) {
        return absl::NotFoundError(absl::StrCat("no process ", pid));
      }
      if (errno == ENOENT) continue;  // A namespace type this kernel does not have.
      return linux::LastErrnoStatus(absl::StrCat("readlink \"", path, "\""));
    }
    // "mnt:[4026531840]"
    absl::string_view link(target, static_cast<size_t>(n));
    size_t open = link.find('[');
    size_t close = link.find(']');
    NamespaceInode ns;
    ns.type = type;
    if (open == absl::string_view::npos || close == absl::string_view::npos ||
        !absl::SimpleAtoi(link.substr(open + 1, close - open - 1), &ns.inode)) {
      return absl::InternalError(absl::StrCat("unexpected \"", link, "\" in \"", path, "\""));
    }
    out.push_back(ns);
  }
  return out;
}

absl::StatusOr<std::vector<MountInfoEntry>> ParseMountInfo(absl::string_view text) {
  std::vector<MountInfoEntry> out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    // id parent major:minor root target options [optional...] - fstype source superopts
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i) {
      if (f[i] == "-") {
        dash = i;
        break;
      }
    }
    MountInfoEntry e;
    if (dash == 0 || dash + 2 >= f.size() || !absl::SimpleAtoi(f[0], &e.id) ||
        !absl::SimpleAtoi(f[1], &e.parent_id)) {
      return absl::DataLossError(
          absl::StrCat("mountinfo line ", line_number, " is malformed: \"", line, "\""));
    }
    e.root = linux::UnescapeMountInfoField(f[3]);
    e.target = linux::UnescapeMountInfoField(f[4]);
    e.options = std::string(f[5]);
    std::vector<std::string> tags;
    for (size_t i = 6; i < dash; ++i) {
      if (absl::StartsWith(f[i], "shared:") || absl::StartsWith(f[i], "master:") ||
          absl::StartsWith(f[i], "propagate_from:") || f[i] == "unbindable") {
        tags.emplace_back(f[i]);
      }
    }
    e.propagation = tags.empty() ? "private" : absl::StrJoin(tags, " ");
    e.fstype = std::string(f[dash + 1]);
    e.source = dash + 2 < f.size() ? linux::UnescapeMountInfoField(f[dash + 2]) : "";
    e.super_options = dash + 3 < f.size() ? std::string(f[dash + 3]) : "";
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<MountInfoEntry>> ReadMountInfo(int pid) {
  auto text = linux::ReadFile(absl::StrCat("/proc/", pid, "/mountinfo"));
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(absl::StrCat("no process ", pid));
    }
    return text.status();
  }
  return ParseMountInfo(*text);
}

}  // namespace nodeagent::runtime
