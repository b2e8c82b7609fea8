#include "services/runtime/linux/cgroup_driver.h"

#include "services/common/linux/files.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/cgroup_v1.h"
#include "services/runtime/linux/cgroup_v2.h"

namespace nodeagent::runtime {

absl::StatusOr<std::unique_ptr<CgroupDriver>> DetectCgroupDriver(const std::string& cgroup_root,
                                                                 const std::string& parent) {
  // Pure v2 has cgroup.controllers at the root itself. On hybrid hosts the cgroup2 mount
  // sits at <root>/unified and holds at most a stray controller or two (hugetlb here), while
  // the limits need the v1 hierarchies: those win.
  if (CgroupFileExists(cgroup_root, "cgroup.controllers")) {
    return NewCgroupV2Driver(cgroup_root, parent);
  }
  NA_ASSIGN_OR_RETURN(std::string mountinfo, linux::ReadFile("/proc/self/mountinfo"));
  return NewCgroupV1Driver(cgroup_root, parent, mountinfo);
}

}  // namespace nodeagent::runtime
