#include "services/runtime/linux/cgroup_v1.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/cgroup_parse.h"

namespace nodeagent::runtime {
namespace {

// Controllers a container's cgroup is made in, in the order its directories are returned.
// devices (Docker's device allow-list on v1) is left to the hardening work.
constexpr const char* kControllers[] = {"memory", "cpu",     "cpuacct", "pids",
                                        "cpuset", "freezer", "blkio"};
constexpr const char* kRequired[] = {"memory", "cpu", "pids"};

struct Hierarchy {
  std::string mount_point;
  std::vector<std::string> controllers;  // Ours that live here; more than one if co-mounted.

  bool Has(absl::string_view controller) const {
    for (const std::string& c : controllers) {
      if (c == controller) return true;
    }
    return false;
  }
};

class CgroupV1Driver : public CgroupDriver {
 public:
  CgroupV1Driver(std::string parent, std::vector<Hierarchy> hierarchies)
      : parent_(std::move(parent)), hierarchies_(std::move(hierarchies)) {}

  std::string Version() const override { return "v1"; }

  absl::StatusOr<std::vector<std::string>> Create(const std::string& id,
                                                  const CgroupLimits& limits) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    NA_RETURN_IF_ERROR(ValidateCgroupLimits(limits));
    std::vector<std::string> made;
    absl::Cleanup rollback = [&made] {
      for (auto it = made.rbegin(); it != made.rend(); ++it) {
        // Best effort: the directories are empty, nothing has joined them yet.
        (void)KillAndRemoveCgroups({*it}, kCgroupDestroyTimeout);
      }
    };
    std::vector<std::string> dirs;
    for (const Hierarchy& h : hierarchies_) {
      NA_RETURN_IF_ERROR(PrepareParent(h));
      std::string dir = absl::StrCat(h.mount_point, "/", parent_, "/", id);
      NA_ASSIGN_OR_RETURN(bool created, MakeCgroupDir(dir));
      if (!created) {
        return absl::AlreadyExistsError(absl::StrCat("cgroup \"", dir, "\" already exists"));
      }
      made.push_back(dir);
      NA_RETURN_IF_ERROR(ApplyLimits(h, dir, limits));
      dirs.push_back(std::move(dir));
    }
    std::move(rollback).Cancel();
    return dirs;
  }

  absl::StatusOr<std::vector<std::string>> Adopt(const std::string& from_id,
                                                 const std::string& to_id,
                                                 const CgroupLimits& limits) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(from_id));
    NA_RETURN_IF_ERROR(ValidateCgroupName(to_id));
    NA_RETURN_IF_ERROR(ValidateCgroupLimits(limits));
    std::vector<std::pair<std::string, std::string>> renamed;
    absl::Cleanup undo = [&renamed] {
      for (auto it = renamed.rbegin(); it != renamed.rend(); ++it) {
        (void)RenameCgroupDir(it->second, it->first);
      }
    };
    std::vector<std::string> dirs;
    for (const Hierarchy& h : hierarchies_) {
      std::string from = absl::StrCat(h.mount_point, "/", parent_, "/", from_id);
      std::string to = absl::StrCat(h.mount_point, "/", parent_, "/", to_id);
      NA_RETURN_IF_ERROR(RenameCgroupDir(from, to));
      renamed.emplace_back(from, to);
      dirs.push_back(std::move(to));
    }
    std::move(undo).Cancel();
    for (size_t i = 0; i < hierarchies_.size(); ++i) {
      NA_RETURN_IF_ERROR(ApplyLimits(hierarchies_[i], dirs[i], limits));
    }
    return dirs;
  }

  absl::Status Destroy(const std::string& id) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    std::vector<std::string> dirs;
    for (const Hierarchy& h : hierarchies_) {
      std::string dir = absl::StrCat(h.mount_point, "/", parent_, "/", id);
      if (h.Has("freezer")) {
        // A frozen (paused) task does not act on SIGKILL until it is thawed.
        absl::Status thawed = WriteCgroupFile(dir, "freezer.state", "THAWED");
        if (!thawed.ok() && !absl::IsNotFound(thawed)) return thawed;
      }
      dirs.push_back(std::move(dir));
    }
    return KillAndRemoveCgroups(dirs, kCgroupDestroyTimeout);
  }

  absl::Status Freeze(const std::string& id) override {
    NA_ASSIGN_OR_RETURN(std::string dir, FreezerDir(id));
    NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "freezer.state", "FROZEN"));
    // The write starts freezing; the state reads FREEZING until every task has stopped.
    return WaitForCgroupFile(dir, "freezer.state", "FROZEN", kCgroupDestroyTimeout);
  }

  absl::Status Thaw(const std::string& id) override {
    NA_ASSIGN_OR_RETURN(std::string dir, FreezerDir(id));
    return WriteCgroupFile(dir, "freezer.state", "THAWED");
  }

  absl::StatusOr<std::vector<std::string>> ListContainerIds() const override {
    // The union over hierarchies: a half-made or half-removed cgroup shows up too.
    std::set<std::string> ids;
    for (const Hierarchy& h : hierarchies_) {
      auto children = ListChildCgroups(absl::StrCat(h.mount_point, "/", parent_));
      if (!children.ok()) {
        if (absl::IsNotFound(children.status())) continue;
        return children.status();
      }
      ids.insert(children->begin(), children->end());
    }
    return std::vector<std::string>(ids.begin(), ids.end());
  }

  std::string RelativePath(const std::string& id) const override {
    return absl::StrCat("/", parent_, "/", id);
  }

 private:
  absl::StatusOr<std::string> FreezerDir(const std::string& id) const {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    for (const Hierarchy& h : hierarchies_) {
      if (h.Has("freezer")) return absl::StrCat(h.mount_point, "/", parent_, "/", id);
    }
    return absl::FailedPreconditionError("cgroup v1: this host has no freezer hierarchy");
  }

  // Makes <mount point>/<parent> level by level. In the cpuset hierarchy a new cgroup starts
  // with empty cpuset.cpus and cpuset.mems and no task may join it until both are set, so
  // each level copies them from the level above.
  absl::Status PrepareParent(const Hierarchy& h) const {
    std::string dir = h.mount_point;
    for (absl::string_view part : absl::StrSplit(parent_, '/')) {
      std::string above = dir;
      absl::StrAppend(&dir, "/", part);
      NA_RETURN_IF_ERROR(MakeCgroupDir(dir).status());
      if (h.Has("cpuset")) {
        NA_RETURN_IF_ERROR(CopyIfEmpty(above, dir, "cpuset.cpus"));
        NA_RETURN_IF_ERROR(CopyIfEmpty(above, dir, "cpuset.mems"));
      }
    }
    return absl::OkStatus();
  }

  static absl::Status CopyIfEmpty(const std::string& from, const std::string& to,
                                  absl::string_view file) {
    NA_ASSIGN_OR_RETURN(std::string current, ReadCgroupFile(to, file));
    if (!absl::StripAsciiWhitespace(current).empty()) return absl::OkStatus();
    NA_ASSIGN_OR_RETURN(std::string value, ReadCgroupFile(from, file));
    return WriteCgroupFile(to, file, absl::StripAsciiWhitespace(value));
  }

  absl::Status ApplyLimits(const Hierarchy& h, const std::string& dir,
                           const CgroupLimits& limits) const {
    std::string above = absl::StrCat(h.mount_point, "/", parent_);
    if (h.Has("cpuset")) {
      if (limits.cpuset_cpus.empty()) {
        NA_RETURN_IF_ERROR(CopyIfEmpty(above, dir, "cpuset.cpus"));
      } else {
        NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cpuset.cpus", limits.cpuset_cpus));
      }
      NA_RETURN_IF_ERROR(CopyIfEmpty(above, dir, "cpuset.mems"));
    }
    if (h.Has("memory") && limits.memory_bytes > 0) {
      NA_RETURN_IF_ERROR(
          WriteCgroupFile(dir, "memory.limit_in_bytes", absl::StrCat(limits.memory_bytes)));
    }
    if (h.Has("cpu") && limits.cpu_quota_us > 0) {
      // Period first: the kernel checks the quota against the period in force.
      int64_t period = limits.cpu_period_us > 0 ? limits.cpu_period_us : 100000;
      NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cpu.cfs_period_us", absl::StrCat(period)));
      NA_RETURN_IF_ERROR(
          WriteCgroupFile(dir, "cpu.cfs_quota_us", absl::StrCat(limits.cpu_quota_us)));
    }
    if (h.Has("pids") && limits.pids_limit > 0) {
      NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "pids.max", absl::StrCat(limits.pids_limit)));
    }
    return absl::OkStatus();
  }

  const std::string parent_;
  const std::vector<Hierarchy> hierarchies_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CgroupDriver>> NewCgroupV1Driver(const std::string& cgroup_root,
                                                                const std::string& parent,
                                                                absl::string_view mountinfo) {
  NA_RETURN_IF_ERROR(ValidateCgroupParent(parent));
  NA_ASSIGN_OR_RETURN(auto mounts, ParseCgroupV1Mounts(mountinfo, cgroup_root));
  std::vector<std::string> missing;
  for (const char* controller : kRequired) {
    if (!mounts.contains(controller)) missing.push_back(controller);
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("cgroup v1: no hierarchy for ",
                                                      absl::StrJoin(missing, ", "), " below \"",
                                                      cgroup_root, "\" in /proc/self/mountinfo"));
  }
  // One directory per mount point: co-mounted controllers ("cpu,cpuacct") are one hierarchy
  // and making the container's directory twice in it would fail.
  std::vector<Hierarchy> hierarchies;
  for (const char* controller : kControllers) {
    auto it = mounts.find(controller);
    if (it == mounts.end()) continue;
    Hierarchy* same = nullptr;
    for (Hierarchy& h : hierarchies) {
      if (h.mount_point == it->second) same = &h;
    }
    if (same == nullptr) {
      hierarchies.push_back(Hierarchy{it->second, {}});
      same = &hierarchies.back();
    }
    same->controllers.emplace_back(controller);
  }
  return std::make_unique<CgroupV1Driver>(parent, std::move(hierarchies));
}

}  // namespace nodeagent::runtime
