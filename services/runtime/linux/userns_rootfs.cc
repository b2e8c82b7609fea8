#include "services/runtime/linux/userns_rootfs.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/mount_options.h"
#include "services/runtime/linux/mounts.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

// A detached copy of the mount tree at `path`, id-mapped through `userns_fd`.
absl::StatusOr<UniqueFd> IdMappedClone(const std::string& path, int userns_fd, bool recursive) {
  int fd = ::open_tree(AT_FDCWD, path.c_str(),
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
  if (fd < 0) return LastErrnoStatus(absl::StrCat("open_tree \"", path, "\""));
  UniqueFd tree(fd);
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                      sizeof(attr)) != 0) {
    int err = errno;
    std::string why = err == EINVAL || err == ENOSYS
                          ? " (the kernel or this layer's filesystem does not support id-mapped "
                            "mounts, which a user namespace container needs)"
                          : "";
    return linux::ErrnoStatus(err, absl::StrCat("id-mapped mount of \"", path, "\"", why));
  }
  return tree;
}

// An overlay mount with every lowerdir replaced by an id-mapped clone ("/proc/self/fd/N", kept
// open in `held` until the mount is made).
absl::StatusOr<ShimMount> IdMappedOverlay(const ShimMount& m, int userns_fd,
                                          std::vector<UniqueFd>& held) {
  ShimMount out = m;
  for (std::string& option : out.options) {
    absl::string_view value = option;
    if (!absl::ConsumePrefix(&value, "lowerdir=")) continue;
    std::vector<std::string> lowers;
    for (absl::string_view lower : absl::StrSplit(value, ':', absl::SkipEmpty())) {
      if (absl::EndsWith(lower, "\\")) {
        return absl::UnimplementedError(
            absl::StrCat("overlay lowerdir \"", value, "\": escaped ':' is not supported"));
      }
      NA_ASSIGN_OR_RETURN(UniqueFd clone,
                          IdMappedClone(std::string(lower), userns_fd, /*recursive=*/false));
      lowers.push_back(FdPath(clone.get()));
      held.push_back(std::move(clone));
    }
    option = absl::StrCat("lowerdir=", absl::StrJoin(lowers, ":"));
  }
  return out;
}

absl::Status ChownUppers(const ShimConfig& config) {
  std::optional<uint32_t> uid = HostIdOfContainerRoot(config.uid_mappings);
  std::optional<uint32_t> gid = HostIdOfContainerRoot(config.gid_mappings);
  if (!uid.has_value() && !gid.has_value()) return absl::OkStatus();
  for (const ShimMount& m : config.rootfs_mounts) {
    if (m.type != "overlay") continue;
    for (const std::string& option : m.options) {
      absl::string_view upper = option;
      if (!absl::ConsumePrefix(&upper, "upperdir=")) continue;
      // Only the upper's root: it is empty at the first start, and what the container made
      // since is owned by its ids already. lchown: never through a symlink.
      if (::lchown(std::string(upper).c_str(), uid.value_or(static_cast<uid_t>(-1)),
                   gid.value_or(static_cast<gid_t>(-1))) != 0) {
        return LastErrnoStatus(absl::StrCat("chown upperdir \"", upper, "\" to ", uid.value_or(0),
                                            ":", gid.value_or(0)));
      }
    }
  }
  return absl::OkStatus();
}

// Mounts the rootfs at `rootfs` in the current mount namespace, id-mapped.
absl::Status MountIdMapped(const ShimConfig& config, const std::string& rootfs, int userns_fd) {
  if (config.rootfs_mounts.empty()) {
    // A plain directory as the rootfs: an id-mapped bind of it onto itself.
    NA_ASSIGN_OR_RETURN(UniqueFd clone, IdMappedClone(rootfs, userns_fd, /*recursive=*/false));
    if (::move_mount(clone.get(), "", AT_FDCWD, rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      return LastErrnoStatus(absl::StrCat("move_mount id-mapped \"", rootfs, "\""));
    }
    return absl::OkStatus();
  }
  for (const ShimMount& m : config.rootfs_mounts) {
    std::vector<UniqueFd> held;
    if (m.type == "overlay") {
      NA_ASSIGN_OR_RETURN(ShimMount mapped, IdMappedOverlay(m, userns_fd, held));
      NA_RETURN_IF_ERROR(MountAtPath(mapped, rootfs));
    } else if (m.type == "bind") {
      bool recursive = std::find(m.options.begin(), m.options.end(), "rbind") != m.options.end();
      NA_ASSIGN_OR_RETURN(UniqueFd clone, IdMappedClone(m.source, userns_fd, recursive));
      if (::move_mount(clone.get(), "", AT_FDCWD, rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        return LastErrnoStatus(
            absl::StrCat("move_mount id-mapped \"", m.source, "\" -> \"", rootfs, "\""));
      }
    } else {
      return absl::UnimplementedError(absl::StrCat(
          "rootfs mount of type \"", m.type, "\" in a user namespace (overlay or bind only)"));
    }
  }
  return absl::OkStatus();
}

// A detached clone of a bind mount's source (unset for other mounts), made in the current
// mount namespace.
absl::StatusOr<UniqueFd> CloneBindSource(const ShimMount& m) {
  if (!m.source_mount_ns.empty()) return CloneBindSourceFromNamespace(m);
  NA_ASSIGN_OR_RETURN(MountOptions opts, ParseMountOptions(m.options));
  if (m.type != "bind" && !opts.IsBind()) return UniqueFd();
  int fd =
      ::open_tree(AT_FDCWD, m.source.c_str(),
                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | ((opts.flags & MS_REC) ? AT_RECURSIVE : 0));
  if (fd < 0) {
    return LastErrnoStatus(
        absl::StrCat("bind \"", m.source, "\" -> \"", m.destination, "\": open_tree"));
  }
  return UniqueFd(fd);
}

// sysfs at /sys below `root_fd`, mounted from inside `child`'s network namespace so that it
// shows that namespace's devices (sysfs takes the mounter's). node-shim returns to its own.
absl::Status MountSysfs(pid_t child, int root_fd, bool privileged) {
  NA_ASSIGN_OR_RETURN(UniqueFd net,
                      linux::OpenFile(absl::StrCat("/proc/", child, "/ns/net"), O_RDONLY));
  NA_ASSIGN_OR_RETURN(UniqueFd own, linux::OpenFile("/proc/self/ns/net", O_RDONLY));
  if (::setns(net.get(), CLONE_NEWNET) != 0) {
    return LastErrnoStatus("setns into the container's network namespace");
  }
  absl::Status mounted = MountInRoot(
      root_fd,
      ShimMount{"sysfs", "sysfs", "/sys", {"nosuid", "noexec", "nodev", privileged ? "rw" : "ro"}});
  if (::setns(own.get(), CLONE_NEWNET) != 0) {
    return LastErrnoStatus("return to node-shim's network namespace");
  }
  return mounted;
}

}  // namespace

std::optional<uint32_t> HostIdOfContainerRoot(const std::vector<ShimIdMapping>& mappings) {
  for (const ShimIdMapping& m : mappings) {
    if (m.size > 0 && m.container_id == 0) return m.host_id;
  }
  return std::nullopt;
}

absl::StatusOr<UserNamespaceRootfs> MountUserNamespaceRootfs(pid_t child,
                                                             const ShimConfig& config) {
  const std::string rootfs = absl::StrCat(config.bundle, "/", kRootfsDir);
  NA_RETURN_IF_ERROR(ChownUppers(config));
  NA_ASSIGN_OR_RETURN(UniqueFd userns,
                      linux::OpenFile(absl::StrCat("/proc/", child, "/ns/user"), O_RDONLY));
  NA_ASSIGN_OR_RETURN(UniqueFd target,
                      linux::OpenFile(absl::StrCat("/proc/", child, "/ns/mnt"), O_RDONLY));
  NA_ASSIGN_OR_RETURN(UniqueFd own, linux::OpenFile("/proc/self/ns/mnt", O_RDONLY));
  // The child's mount namespace belongs to its user namespace: the kernel made every shared
  // mount copied into it a slave (CL_SHARED_TO_SLAVE), so nothing mounted here reaches the host.
  if (::setns(target.get(), CLONE_NEWNS) != 0) {
    return LastErrnoStatus("setns into the container's mount namespace");
  }
  absl::Status mounted = MountIdMapped(config, rootfs, userns.get());
  absl::StatusOr<UserNamespaceRootfs> root = absl::InternalError("not reached");
  if (mounted.ok()) {
    int fd = ::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      root = UserNamespaceRootfs{UniqueFd(fd), {}};
      if (absl::Status sys = MountSysfs(child, root->root.get(), config.privileged); !sys.ok()) {
        root = sys;
      }
    }
    if (fd >= 0 && root.ok()) {
      root->binds.resize(config.mounts.size());
      for (size_t i = 0; i < config.mounts.size() && root.ok(); ++i) {
        absl::StatusOr<UniqueFd> clone = CloneBindSource(config.mounts[i]);
        if (clone.ok()) {
          root->binds[i] = *std::move(clone);
        } else {
          root = clone.status();
        }
      }
    } else if (fd < 0) {
      root = LastErrnoStatus(absl::StrCat("open \"", rootfs, "\" (mounted)"));
    }
  } else {
    root = mounted;
  }
  if (::setns(own.get(), CLONE_NEWNS) != 0) {
    // node-shim would go on in the container's mount namespace: the caller gives up.
    return LastErrnoStatus("return to node-shim's mount namespace");
  }
  if (!root.ok()) return Annotate(root.status(), "user namespace rootfs");
  return root;
}

}  // namespace nodeagent::runtime
