#include "services/runtime/linux/cgroup_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/cgroup_parse.h"

namespace nodeagent::runtime {
namespace {

using linux::ErrnoStatus;
using linux::LastErrnoStatus;
using linux::UniqueFd;

std::string FilePath(const std::string& dir, absl::string_view file) {
  return absl::StrCat(dir, "/", file);
}

// Directories below `dir`, deepest first, then `dir` itself: the order rmdir needs.
absl::Status CollectTree(const std::string& dir, std::vector<std::string>& out) {
  auto children = ListChildCgroups(dir);
  if (!children.ok()) {
    if (absl::IsNotFound(children.status())) return absl::OkStatus();
    return children.status();
  }
  for (const std::string& child : *children) {
    NA_RETURN_IF_ERROR(CollectTree(FilePath(dir, child), out));
  }
  out.push_back(dir);
  return absl::OkStatus();
}

// Removes the trees at `dirs`; OK when all are gone, UNAVAILABLE (EBUSY) while a cgroup still
// has tasks that are on their way out.
absl::Status RemoveTrees(const std::vector<std::string>& dirs) {
  for (const std::string& top : dirs) {
    std::vector<std::string> tree;
    NA_RETURN_IF_ERROR(CollectTree(top, tree));
    for (const std::string& dir : tree) {
      if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
        return LastErrnoStatus(absl::StrCat("rmdir \"", dir, "\""));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCgroupName(absl::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("invalid cgroup name \"", name, "\""));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid cgroup name \"", name, "\": only [A-Za-z0-9_.-] allowed"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCgroupParent(absl::string_view parent) {
  for (absl::string_view part : absl::StrSplit(parent, '/')) {
    if (absl::Status s = ValidateCgroupName(part); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid cgroup parent \"", parent, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCgroupLimits(const CgroupLimits& limits) {
  auto negative = [](absl::string_view field, int64_t value) {
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup limits: ", field, " is ", value, ", must not be negative"));
  };
  if (limits.memory_bytes < 0) return negative("memory_bytes", limits.memory_bytes);
  if (limits.cpu_quota_us < 0) return negative("cpu_quota_us", limits.cpu_quota_us);
  if (limits.cpu_period_us < 0) return negative("cpu_period_us", limits.cpu_period_us);
  if (limits.pids_limit < 0) return negative("pids_limit", limits.pids_limit);
  if (limits.cpu_period_us != 0 && limits.cpu_quota_us == 0) {
    return absl::InvalidArgumentError("cgroup limits: cpu_period_us without cpu_quota_us");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadCgroupFile(const std::string& dir, absl::string_view file) {
  return linux::ReadFile(FilePath(dir, file));
}

absl::Status WriteCgroupFile(const std::string& dir, absl::string_view file,
                             absl::string_view data) {
  std::string path = FilePath(dir, file);
  auto describe = [&] { return absl::StrCat("write \"", path, "\" = \"", data, "\""); };
  // cgroupfs has no symlinks: O_NOFOLLOW costs nothing and keeps a mistaken path from
  // writing through one elsewhere.
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return LastErrnoStatus(describe());
  UniqueFd closer(fd);
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return LastErrnoStatus(describe());
  if (static_cast<size_t>(n) != data.size()) {
    return absl::InternalError(absl::StrCat(describe(), ": short write of ", n, " bytes"));
  }
  return absl::OkStatus();
}

bool CgroupFileExists(const std::string& dir, absl::string_view file) {
  return ::access(FilePath(dir, file).c_str(), F_OK) == 0;
}

absl::StatusOr<bool> MakeCgroupDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return true;
  if (errno == EEXIST) return false;
  return LastErrnoStatus(absl::StrCat("mkdir \"", path, "\""));
}

absl::Status RenameCgroupDir(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return absl::OkStatus();
  const int err = errno;
  absl::Status error =
      linux::ErrnoStatus(err, absl::StrCat("rename \"", from, "\" -> \"", to, "\""));
  if (err == EEXIST || err == ENOTEMPTY) return absl::AlreadyExistsError(error.message());
  return error;
}

absl::StatusOr<std::vector<std::string>> ListChildCgroups(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return LastErrnoStatus(absl::StrCat("opendir \"", dir, "\""));
  std::vector<std::string> out;
  while (struct dirent* entry = ::readdir(d)) {
    absl::string_view name = entry->d_name;
    // In cgroupfs every directory is a cgroup and everything else is a control file.
    if (entry->d_type != DT_DIR || name == "." || name == "..") continue;
    out.emplace_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<pid_t>> CgroupTreeProcs(const std::string& dir) {
  std::vector<std::string> tree;
  NA_RETURN_IF_ERROR(CollectTree(dir, tree));
  std::vector<pid_t> out;
  for (const std::string& cgroup : tree) {
    auto text = ReadCgroupFile(cgroup, "cgroup.procs");
    if (!text.ok()) {
      if (absl::IsNotFound(text.status())) continue;  // Removed meanwhile.
      return text.status();
    }
    auto pids = ParseCgroupProcs(*text);
    if (!pids.ok()) return Annotate(pids.status(), FilePath(cgroup, "cgroup.procs"));
    out.insert(out.end(), pids->begin(), pids->end());
  }
  return out;
}

absl::Status KillAndRemoveCgroups(const std::vector<std::string>& dirs, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Microseconds(250);
  while (true) {
    std::vector<pid_t> pids;
    for (const std::string& dir : dirs) {
      NA_ASSIGN_OR_RETURN(std::vector<pid_t> more, CgroupTreeProcs(dir));
      pids.insert(pids.end(), more.begin(), more.end());
    }
    absl::Status removed = absl::OkStatus();
    if (pids.empty()) {
      removed = RemoveTrees(dirs);
      if (removed.ok()) return absl::OkStatus();
      // EBUSY: a task that left cgroup.procs is not fully gone yet; try again below.
      if (!absl::IsUnavailable(removed)) return removed;
    }
    for (pid_t pid : pids) {
      // The pid was read from cgroup.procs a moment ago; a process that exited meanwhile
      // gives ESRCH. (Pid reuse within that moment is the same risk runc accepts.)
      if (::kill(pid, SIGKILL) != 0 && errno != ESRCH) {
        return LastErrnoStatus(absl::StrCat("kill ", pid, " in cgroup \"", dirs.front(), "\""));
      }
    }
    if (absl::Now() >= deadline) {
      if (!pids.empty()) {
        return absl::DeadlineExceededError(
            absl::StrCat("cgroup \"", dirs.front(), "\" still has processes ",
                         absl::StrJoin(pids, " "), " after ", absl::FormatDuration(timeout)));
      }
      return absl::DeadlineExceededError(
          absl::StrCat(removed.message(), " (still after ", absl::FormatDuration(timeout), ")"));
    }
    // Dying processes leave within a few milliseconds; cgroup v1 has no event to wait on, so
    // poll with a short, growing interval.
    absl::SleepFor(std::min(backoff, deadline - absl::Now()));
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
}

absl::Status WaitForCgroupFile(const std::string& dir, absl::string_view file,
                               absl::string_view wanted, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Microseconds(100);
  while (true) {
    NA_ASSIGN_OR_RETURN(std::string content, ReadCgroupFile(dir, file));
    if (absl::StrContains(content, wanted)) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("\"", dir, "/", file, "\" is \"", absl::StripAsciiWhitespace(content),
                       "\", not \"", wanted, "\", after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(std::min(backoff, deadline - absl::Now()));
    backoff = std::min(backoff * 2, absl::Milliseconds(20));
  }
}

}  // namespace nodeagent::runtime
