#include "services/runtime/linux/rootfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/mount_options.h"
#include "services/runtime/linux/mounts.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

struct DeviceNode {
  const char* name;
  unsigned int major;
  unsigned int minor;
};

// Docker's minimal set (the OCI runtime spec's default devices).
constexpr DeviceNode kDevices[] = {
    {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

struct DevSymlink {
  const char* name;
  const char* target;
};

constexpr DevSymlink kDevSymlinks[] = {
    {"ptmx", "pts/ptmx"},          {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
};

ShimMount Special(const char* type, const char* destination, std::vector<std::string> options) {
  return ShimMount{type, type, destination, std::move(options)};
}

// A device node in /dev: mknod, or where that is not allowed (a user namespace) an empty
// file with the host's node bound onto it.
absl::Status MakeDevice(int dev_fd, const DeviceNode& d) {
  std::string shown = absl::StrCat("/dev/", d.name);
  if (::mknodat(dev_fd, d.name, S_IFCHR | 0666, makedev(d.major, d.minor)) == 0) {
    return absl::OkStatus();
  }
  if (errno != EPERM) {
    return LastErrnoStatus(absl::StrCat("mknod \"", shown, "\" (", d.major, ":", d.minor, ")"));
  }
  int fd = ::openat(dev_fd, d.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) return LastErrnoStatus(absl::StrCat("create \"", shown, "\""));
  UniqueFd file(fd);
  // Still before pivot_root: "/dev/<name>" is the host's node.
  return Mount(shown, FdPath(file.get()), "", MS_BIND, "", shown);
}

absl::Status MountDev(int root_fd) {
  NA_RETURN_IF_ERROR(MountInRoot(
      root_fd, Special("tmpfs", "/dev", {"nosuid", "strictatime", "mode=755", "size=65536k"})));
  // Opened after the mount, so this is the new tmpfs and not the directory it covers.
  NA_ASSIGN_OR_RETURN(UniqueFd dev, OpenInRoot(root_fd, "/dev"));
  for (const DeviceNode& d : kDevices) NA_RETURN_IF_ERROR(MakeDevice(dev.get(), d));
  NA_RETURN_IF_ERROR(MountInRoot(root_fd, Special("devpts", "/dev/pts",
                                                  {"nosuid", "noexec", "newinstance",
                                                   "ptmxmode=0666", "mode=0620", "gid=5"})));
  NA_RETURN_IF_ERROR(MountInRoot(
      root_fd,
      Special("tmpfs", "/dev/shm", {"nosuid", "nodev", "noexec", "mode=1777", "size=65536k"})));
  NA_RETURN_IF_ERROR(
      MountInRoot(root_fd, Special("mqueue", "/dev/mqueue", {"nosuid", "nodev", "noexec"})));
  for (const DevSymlink& l : kDevSymlinks) {
    if (::symlinkat(l.target, dev.get(), l.name) != 0) {
      return LastErrnoStatus(absl::StrCat("symlink \"/dev/", l.name, "\" -> \"", l.target, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> PrepareRootfs(const ShimConfig& config, int mounted_root,
                                          std::vector<UniqueFd> binds) {
  // Binds that are to share mounts with the host: cloned while this namespace's copies are
  // still peers of the host's mounts (not in a user namespace: there the kernel made them
  // slaves already, and mounts propagate from the host only).
  std::vector<UniqueFd> shared_binds = std::move(binds);
  shared_binds.resize(config.mounts.size());
  for (size_t i = 0; mounted_root < 0 && i < config.mounts.size(); ++i) {
    const ShimMount& m = config.mounts[i];
    NA_ASSIGN_OR_RETURN(MountOptions opts, ParseMountOptions(m.options));
    if (!m.source_mount_ns.empty()) {
      NA_ASSIGN_OR_RETURN(shared_binds[i], CloneBindSourceFromNamespace(m));
    } else if ((m.type == "bind" || opts.IsBind()) && (opts.propagation & MS_SHARED)) {
      NA_ASSIGN_OR_RETURN(shared_binds[i], CloneSharedBindSource(m));
    }
  }
  // Mounts copied from the host keep the host's propagation; a shared one would carry every
  // mount below back out. As slaves they still receive the host's later mounts, and send
  // nothing.
  NA_RETURN_IF_ERROR(Mount("", "/", "", MS_REC | MS_SLAVE, "", "/ (in the new namespace)"));

  const std::string rootfs =
      mounted_root >= 0 ? FdPath(mounted_root) : absl::StrCat(config.bundle, "/", kRootfsDir);
  if (mounted_root < 0 && config.rootfs_mounts.empty()) {
    NA_RETURN_IF_ERROR(MountAtPath(ShimMount{"bind", rootfs, "", {"rbind"}}, rootfs));
  }
  for (size_t i = 0; mounted_root < 0 && i < config.rootfs_mounts.size(); ++i) {
    NA_RETURN_IF_ERROR(MountAtPath(config.rootfs_mounts[i], rootfs));
  }

  int fd = ::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus(absl::StrCat("open \"", rootfs, "\""));
  UniqueFd root(fd);
  NA_RETURN_IF_ERROR(
      MountInRoot(root.get(), Special("proc", "/proc", {"nosuid", "noexec", "nodev"})));
  NA_RETURN_IF_ERROR(MountDev(root.get()));
  // In a user namespace node-shim mounted /sys already, from inside the container's network
  // namespace (userns_rootfs.h): the mapped root may not mount sysfs for a network namespace it
  // does not own (a bridge network's).
  if (mounted_root < 0) {
    NA_RETURN_IF_ERROR(MountInRoot(
        root.get(),
        Special("sysfs", "/sys", {"nosuid", "noexec", "nodev", config.privileged ? "rw" : "ro"})));
  }
  for (size_t i = 0; i < config.mounts.size(); ++i) {
    NA_RETURN_IF_ERROR(MountInRoot(root.get(), config.mounts[i], shared_binds[i].get()));
  }
  return rootfs;
}

absl::Status PivotRoot(const std::string& rootfs) {
  int fd = ::open(rootfs.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus(absl::StrCat("open \"", rootfs, "\""));
  UniqueFd new_root(fd);
  // The old root, held by fd: after pivot_root(".", ".") the path "." names the new root for
  // mount(2) (only umount follows to the mount stacked on top of it).
  int old_fd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (old_fd < 0) return LastErrnoStatus("open \"/\" (the old root)");
  UniqueFd old_root(old_fd);
  if (::fchdir(new_root.get()) != 0) {
    return LastErrnoStatus(absl::StrCat("chdir \"", rootfs, "\""));
  }
  // pivot_root(".", "."): the old root ends up mounted on top of the new one, at "."; no
  // put_old directory inside the rootfs is needed.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) {
    return LastErrnoStatus(absl::StrCat("pivot_root \"", rootfs, "\""));
  }
  // The old root is a slave already; say so again recursively so that its unmount below can
  // never reach the host, whatever was mounted since. Only the old root's tree: the
  // container's own mounts keep their propagation (an rshared bind stays the host's peer).
  NA_RETURN_IF_ERROR(Mount("", FdPath(old_root.get()), "", MS_SLAVE | MS_REC, "", "old root"));
  if (::umount2(".", MNT_DETACH) != 0) return LastErrnoStatus("umount old root");
  if (::chdir("/") != 0) return LastErrnoStatus("chdir \"/\"");
  return absl::OkStatus();
}

absl::Status MaskPaths(const std::vector<std::string>& masked,
                       const std::vector<std::string>& readonly) {
  for (const std::string& path : masked) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return LastErrnoStatus(absl::StrCat("mask \"", path, "\": stat"));
    }
    if (S_ISDIR(st.st_mode)) {
      NA_RETURN_IF_ERROR(Mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0", path));
    } else {
      NA_RETURN_IF_ERROR(Mount("/dev/null", path, "", MS_BIND, "", path));
    }
  }
  for (const std::string& path : readonly) {
    if (::access(path.c_str(), F_OK) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return LastErrnoStatus(absl::StrCat("read-only \"", path, "\": access"));
    }
    NA_RETURN_IF_ERROR(Mount(path, path, "", MS_BIND | MS_REC, "", path));
    NA_RETURN_IF_ERROR(SetMountAttributes(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                          /*recursive=*/true, path));
  }
  return absl::OkStatus();
}

absl::Status RemountRootReadonly() {
  return SetMountAttributes("/", MS_RDONLY, /*recursive=*/false, "/");
}

}  // namespace nodeagent::runtime
