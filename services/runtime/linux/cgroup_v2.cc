#include "services/runtime/linux/cgroup_v2.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/cgroup_parse.h"

namespace nodeagent::runtime {
namespace {

// Enabled for containers wherever the host offers them, limits or not, so that their usage
// is accounted (and the metrics service can read it).
constexpr const char* kControllers[] = {"cpuset", "cpu", "io", "memory", "pids"};

bool Contains(const std::vector<std::string>& list, absl::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

class CgroupV2Driver : public CgroupDriver {
 public:
  CgroupV2Driver(std::string root, std::string parent)
      : root_(std::move(root)), parent_(std::move(parent)) {}

  std::string Version() const override { return "v2"; }

  absl::StatusOr<std::vector<std::string>> Create(const std::string& id,
                                                  const CgroupLimits& limits) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    NA_RETURN_IF_ERROR(ValidateCgroupLimits(limits));
    NA_ASSIGN_OR_RETURN(std::vector<std::string> enabled, PrepareParent());
    auto require = [&](absl::string_view controller) -> absl::Status {
      if (Contains(enabled, controller)) return absl::OkStatus();
      return absl::FailedPreconditionError(absl::StrCat(
          "cgroup v2: a ", controller, " limit needs the ", controller, " controller, which \"",
          root_, "/", parent_, "\" cannot offer (cgroup.subtree_control: \"",
          absl::StrJoin(enabled, " "), "\")"));
    };
    if (limits.memory_bytes > 0) NA_RETURN_IF_ERROR(require("memory"));
    if (limits.cpu_quota_us > 0) NA_RETURN_IF_ERROR(require("cpu"));
    if (limits.pids_limit > 0) NA_RETURN_IF_ERROR(require("pids"));
    if (!limits.cpuset_cpus.empty()) NA_RETURN_IF_ERROR(require("cpuset"));

    std::string dir = Dir(id);
    NA_ASSIGN_OR_RETURN(bool created, MakeCgroupDir(dir));
    if (!created) {
      return absl::AlreadyExistsError(absl::StrCat("cgroup \"", dir, "\" already exists"));
    }
    absl::Cleanup rollback = [&dir] {
      // Best effort: the directory is empty, nothing has joined it yet.
      (void)KillAndRemoveCgroups({dir}, kCgroupDestroyTimeout);
    };
    if (limits.memory_bytes > 0) {
      NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "memory.max", absl::StrCat(limits.memory_bytes)));
    }
    if (limits.cpu_quota_us > 0) {
      int64_t period = limits.cpu_period_us > 0 ? limits.cpu_period_us : 100000;
      NA_RETURN_IF_ERROR(
          WriteCgroupFile(dir, "cpu.max", absl::StrCat(limits.cpu_quota_us, " ", period)));
    }
    if (limits.pids_limit > 0) {
      NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "pids.max", absl::StrCat(limits.pids_limit)));
    }
    if (!limits.cpuset_cpus.empty()) {
      NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cpuset.cpus", limits.cpuset_cpus));
    }
    std::move(rollback).Cancel();
    return std::vector<std::string>{dir};
  }

  absl::StatusOr<std::vector<std::string>> Adopt(const std::string&, const std::string&,
                                                 const CgroupLimits&) override {
    return absl::UnimplementedError("cgroup v2 cannot rename a cgroup");
  }

  absl::Status Destroy(const std::string& id) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    std::string dir = Dir(id);
    // cgroup.kill (5.14+) kills the whole subtree at once, frozen tasks included, and no
    // fork can slip through. Without it, thaw and kill pid by pid.
    absl::Status killed = WriteCgroupFile(dir, "cgroup.kill", "1");
    if (absl::IsNotFound(killed) && CgroupFileExists(dir, "cgroup.freeze")) {
      killed = WriteCgroupFile(dir, "cgroup.freeze", "0");
    }
    if (!killed.ok() && !absl::IsNotFound(killed)) return killed;
    return KillAndRemoveCgroups({dir}, kCgroupDestroyTimeout);
  }

  absl::Status Freeze(const std::string& id) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    std::string dir = Dir(id);
    if (!CgroupFileExists(dir, "cgroup.freeze")) {
      return absl::FailedPreconditionError(
          absl::StrCat("cgroup v2: \"", dir, "\" has no cgroup.freeze (kernel older than 5.2)"));
    }
    NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cgroup.freeze", "1"));
    // cgroup.events says "frozen 1" once every task has stopped.
    return WaitForCgroupFile(dir, "cgroup.events", "frozen 1", kCgroupDestroyTimeout);
  }

  absl::Status Thaw(const std::string& id) override {
    NA_RETURN_IF_ERROR(ValidateCgroupName(id));
    return WriteCgroupFile(Dir(id), "cgroup.freeze", "0");
  }

  absl::StatusOr<std::vector<std::string>> ListContainerIds() const override {
    auto children = ListChildCgroups(absl::StrCat(root_, "/", parent_));
    if (absl::IsNotFound(children.status())) return std::vector<std::string>{};
    return children;
  }

  std::string RelativePath(const std::string& id) const override {
    return absl::StrCat("/", parent_, "/", id);
  }

 private:
  std::string Dir(const std::string& id) const {
    return absl::StrCat(root_, "/", parent_, "/", id);
  }

  // Makes <root>/<parent> level by level and enables our controllers in each level's
  // cgroup.subtree_control (a controller reaches a cgroup only if every ancestor enables it).
  // Returns the controllers the containers' cgroups get. Already-enabled ones are not written
  // again, so the common case costs a few reads.
  absl::StatusOr<std::vector<std::string>> PrepareParent() const {
    std::string dir = root_;
    std::vector<std::string> enabled;
    std::vector<absl::string_view> levels = absl::StrSplit(parent_, '/');
    for (size_t i = 0; i <= levels.size(); ++i) {
      NA_ASSIGN_OR_RETURN(std::string available, ReadCgroupFile(dir, "cgroup.controllers"));
      NA_ASSIGN_OR_RETURN(std::string subtree, ReadCgroupFile(dir, "cgroup.subtree_control"));
      enabled = ParseCgroupControllers(subtree);
      std::vector<std::string> offered = ParseCgroupControllers(available);
      std::vector<std::string> add;
      for (const char* c : kControllers) {
        if (Contains(offered, c) && !Contains(enabled, c)) add.push_back(absl::StrCat("+", c));
      }
      if (!add.empty()) {
        NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cgroup.subtree_control", absl::StrJoin(add, " ")));
        for (const std::string& a : add) enabled.push_back(a.substr(1));
      }
      if (i == levels.size()) break;
      absl::StrAppend(&dir, "/", levels[i]);
      NA_RETURN_IF_ERROR(MakeCgroupDir(dir).status());
    }
    return enabled;
  }

  const std::string root_;
  const std::string parent_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CgroupDriver>> NewCgroupV2Driver(const std::string& cgroup_root,
                                                                const std::string& parent) {
  NA_RETURN_IF_ERROR(ValidateCgroupParent(parent));
  if (!CgroupFileExists(cgroup_root, "cgroup.controllers")) {
    return absl::FailedPreconditionError(
        absl::StrCat("cgroup v2: \"", cgroup_root, "\" is not a cgroup2 mount"));
  }
  return std::make_unique<CgroupV2Driver>(cgroup_root, parent);
}

}  // namespace nodeagent::runtime
