#include "services/runtime/linux/mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/mount_options.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

// Flags that change a bind mount after it exists (a bind ignores them when it is made).
constexpr unsigned long kBindAttrFlags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME |
                                         MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME;

int OpenAt2(int dirfd, const std::string& path, uint64_t flags, uint64_t resolve) {
  struct open_how how = {};
  how.flags = flags;
  how.resolve = resolve;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
    // The kernel asks for a retry when a rename raced the lookup.
  } while (fd < 0 && (errno == EAGAIN || errno == EINTR));
  return fd;
}

constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

absl::StatusOr<std::vector<std::string>> SplitContainerPath(absl::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" is not an absolute path"));
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" contains \"..\""));
    }
    parts.emplace_back(part);
  }
  return parts;
}

absl::StatusOr<UniqueFd> OpenPrefix(int root_fd, const std::vector<std::string>& parts, size_t n,
                                    absl::string_view shown) {
  std::string rel = n == 0 ? "." : absl::StrJoin(parts.begin(), parts.begin() + n, "/");
  int fd = OpenAt2(root_fd, rel, O_PATH | O_CLOEXEC, kInRoot);
  if (fd < 0) return LastErrnoStatus(absl::StrCat("open \"/", rel, "\" in ", shown));
  return UniqueFd(fd);
}

// mount_setattr(2) flags for the MS_* flags a bind takes after the fact.
struct mount_attr BindAttr(unsigned long flags) {
  struct mount_attr attr = {};
  if (flags & MS_RDONLY) attr.attr_set |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
  if (flags & MS_NODIRATIME) attr.attr_set |= MOUNT_ATTR_NODIRATIME;
  if (flags & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME)) {
    // The access-time modes are one field: clear it and set the one asked for.
    attr.attr_clr |= MOUNT_ATTR__ATIME;
    if (flags & MS_NOATIME) {
      attr.attr_set |= MOUNT_ATTR_NOATIME;
    } else if (flags & MS_STRICTATIME) {
      attr.attr_set |= MOUNT_ATTR_STRICTATIME;
    } else {
      attr.attr_set |= MOUNT_ATTR_RELATIME;
    }
  }
  return attr;
}

}  // namespace

absl::Status SetMountAttributes(const std::string& target, unsigned long flags, bool recursive,
                                absl::string_view shown) {
  // mount_setattr only adds what is asked, so flags the kernel locked on a bind's source
  // (nosuid, nodev in a user namespace) stay; an MS_REMOUNT would have to repeat them.
  struct mount_attr attr = BindAttr(flags);
  if (::mount_setattr(AT_FDCWD, target.c_str(), recursive ? AT_RECURSIVE : 0, &attr,
                      sizeof(attr)) == 0) {
    return absl::OkStatus();
  }
  if (errno != ENOSYS) {
    return LastErrnoStatus(absl::StrCat("mount_setattr \"", shown, "\" (",
                                        MountFlagsToString(flags), recursive ? ", recursive" : "",
                                        ")"));
  }
  // Kernels before 5.12: one remount, which only reaches the top mount of an rbind.
  return Mount("", target, "", MS_REMOUNT | MS_BIND | flags, "", shown);
}

namespace {

// Where a mount goes. A container path is resolved again below the root fd for every step:
// a fd opened before a mount still refers to the directory underneath it, so the steps after
// the first (bind attributes, propagation) must look the path up anew to reach the new mount.
struct MountTarget {
  int root_fd = -1;  // -1: `path` is a host path.
  std::string path;
  linux::UniqueFd resolved;  // Holds the fd FdPath() names while a step runs.

  absl::StatusOr<std::string> Resolve(CreateAs create) {
    if (root_fd < 0) return path;
    NA_ASSIGN_OR_RETURN(resolved, OpenInRoot(root_fd, path, create));
    return FdPath(resolved.get());
  }
};

absl::Status ApplyMount(const ShimMount& m, MountTarget& target, int detached_bind = -1) {
  NA_ASSIGN_OR_RETURN(MountOptions opts, ParseMountOptions(m.options));
  const bool bind = m.type == "bind" || opts.IsBind();
  CreateAs create = CreateAs::kDirectory;
  struct stat st;
  // A clone's own inode: its source path may be out of reach (a user namespace's root).
  int stat_rc = detached_bind >= 0 ? ::fstat(detached_bind, &st) : ::stat(m.source.c_str(), &st);
  if (bind && stat_rc == 0 && !S_ISDIR(st.st_mode)) {
    create = CreateAs::kFile;  // A file can only be bound onto a file.
  }
  const std::string& shown = target.path;
  NA_ASSIGN_OR_RETURN(std::string path, target.Resolve(create));
  if (target.root_fd >= 0) {
    // A destination that resolves (through the image's or a mount's symlinks) to the root
    // itself would bury the whole rootfs.
    struct stat dest, root;
    if (::fstat(target.resolved.get(), &dest) == 0 && ::fstat(target.root_fd, &root) == 0 &&
        dest.st_dev == root.st_dev && dest.st_ino == root.st_ino) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mount destination \"", shown, "\" resolves to the container's root directory"));
    }
  }
  if (bind) {
    if (!opts.data.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("bind mount \"", m.source, "\" -> \"", shown,
                                                     "\": unknown options \"", opts.data, "\""));
    }
    bool recursive = (opts.flags & MS_REC) != 0;
    if (detached_bind >= 0) {
      // The target as the fd itself: move_mount refuses a /proc/self/fd magic link (EINVAL).
      if (::move_mount(detached_bind, "", target.resolved.get(), "",
                       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        return LastErrnoStatus(
            absl::StrCat("move_mount \"", m.source, "\" (cloned) -> \"", shown, "\""));
      }
    } else {
      NA_RETURN_IF_ERROR(Mount(m.source, path, "", MS_BIND | (recursive ? MS_REC : 0), "", shown));
    }
    if (unsigned long attrs = opts.flags & kBindAttrFlags; attrs != 0) {
      NA_ASSIGN_OR_RETURN(path, target.Resolve(CreateAs::kNothing));
      NA_RETURN_IF_ERROR(SetMountAttributes(path, attrs, recursive, shown));
    }
  } else {
    NA_RETURN_IF_ERROR(Mount(m.source, path, m.type, opts.flags, opts.data, shown));
  }
  if (opts.propagation != 0) {
    NA_ASSIGN_OR_RETURN(path, target.Resolve(CreateAs::kNothing));
    NA_RETURN_IF_ERROR(Mount("", path, "", opts.propagation, "", shown));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Mount(const std::string& source, const std::string& target, const std::string& type,
                   unsigned long flags, const std::string& data, absl::string_view shown_target) {
  if (::mount(source.empty() ? nullptr : source.c_str(), target.c_str(),
              type.empty() ? nullptr : type.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) == 0) {
    return absl::OkStatus();
  }
  int err = errno;
  std::string details = type;
  absl::StrAppend(&details, details.empty() ? "" : ", ", MountFlagsToString(flags));
  if (!data.empty()) absl::StrAppend(&details, ", \"", data, "\"");
  return linux::ErrnoStatus(
      err, absl::StrCat("mount \"", source, "\" -> \"",
                        shown_target.empty() ? absl::string_view(target) : shown_target, "\" (",
                        details, ")"));
}

std::string FdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

absl::StatusOr<UniqueFd> OpenInRoot(int root_fd, absl::string_view path, CreateAs create) {
  NA_ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitContainerPath(path));
  int fd = OpenAt2(root_fd, parts.empty() ? "." : absl::StrJoin(parts, "/"), O_PATH | O_CLOEXEC,
                   kInRoot);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != ENOENT || create == CreateAs::kNothing) {
    return LastErrnoStatus(absl::StrCat("open \"", path, "\" in the container"));
  }
  // Walk down, creating what is missing. Every step is resolved again from the root, so a
  // component that is (or races into being) a symlink still cannot lead outside it.
  NA_ASSIGN_OR_RETURN(UniqueFd dir, OpenPrefix(root_fd, parts, 0, "the container"));
  int symlinks_followed = 0;
  size_t i = 0;  // parts[0, i) are open as `dir`.
  while (i < parts.size()) {
    fd = OpenAt2(root_fd, absl::StrJoin(parts.begin(), parts.begin() + i + 1, "/"),
                 O_PATH | O_CLOEXEC, kInRoot);
    if (fd >= 0) {
      dir = UniqueFd(fd);
      ++i;
      continue;
    }
    if (errno != ENOENT) {
      return LastErrnoStatus(absl::StrCat("open \"", path, "\" in the container"));
    }
    const std::string& name = parts[i];
    char link[PATH_MAX];
    ssize_t link_size = ::readlinkat(dir.get(), name.c_str(), link, sizeof(link) - 1);
    if (link_size >= 0) {
      // A dangling symlink: create what it points to, inside the root, the way Docker's
      // MkdirAll over a securejoin'ed path does. The link's target replaces the component
      // and the walk starts over.
      if (++symlinks_followed > 40) {
        return linux::ErrnoStatus(ELOOP, absl::StrCat("open \"", path, "\" in the container"));
      }
      std::vector<std::string> expanded;
      absl::string_view target(link, static_cast<size_t>(link_size));
      if (target.empty() || target[0] != '/') {
        expanded.assign(parts.begin(), parts.begin() + i);
      }
      for (absl::string_view part : absl::StrSplit(target, '/', absl::SkipEmpty())) {
        if (part == ".") continue;
        if (part == "..") {
          if (!expanded.empty()) expanded.pop_back();  // ".." at the root stays there.
          continue;
        }
        expanded.emplace_back(part);
      }
      expanded.insert(expanded.end(), parts.begin() + i + 1, parts.end());
      parts = std::move(expanded);
      NA_ASSIGN_OR_RETURN(dir, OpenPrefix(root_fd, parts, 0, "the container"));
      i = 0;
      continue;
    }
    if (i + 1 == parts.size() && create == CreateAs::kFile) {
      int file = ::openat(dir.get(), name.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (file < 0 && errno != EEXIST) {
        return LastErrnoStatus(absl::StrCat("create \"", path, "\" in the container"));
      }
      if (file >= 0) ::close(file);
    } else if (::mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
      return LastErrnoStatus(absl::StrCat("mkdir \"/",
                                          absl::StrJoin(parts.begin(), parts.begin() + i + 1, "/"),
                                          "\" in the container"));
    }
    NA_ASSIGN_OR_RETURN(dir, OpenPrefix(root_fd, parts, i + 1, "the container"));
    ++i;
  }
  return dir;
}

absl::Status MountInRoot(int root_fd, const ShimMount& m, int detached_bind) {
  MountTarget target{root_fd, m.destination, {}};
  return ApplyMount(m, target, detached_bind);
}

absl::StatusOr<UniqueFd> CloneSharedBindSource(const ShimMount& m) {
  NA_ASSIGN_OR_RETURN(MountOptions opts, ParseMountOptions(m.options));
  const bool recursive = (opts.flags & MS_REC) != 0;
  const std::string what = absl::StrCat("bind \"", m.source, "\" -> \"", m.destination, "\"");
  // Which mount the source is on, and whether that mount is shared (mountinfo's optional
  // fields: "shared:N").
  struct statx stx = {};
  if (::statx(AT_FDCWD, m.source.c_str(), 0, STATX_MNT_ID, &stx) != 0) {
    return LastErrnoStatus(absl::StrCat(what, ": statx"));
  }
  NA_ASSIGN_OR_RETURN(std::string mountinfo, linux::ReadFile("/proc/self/mountinfo"));
  bool shared = false;
  std::string mount_point = "?";
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    uint64_t id = 0;
    if (f.size() < 7 || !absl::SimpleAtoi(f[0], &id) || id != stx.stx_mnt_id) continue;
    mount_point = std::string(f[4]);
    for (size_t i = 6; i < f.size() && f[i] != "-"; ++i) {
      if (absl::StartsWith(f[i], "shared:")) shared = true;
    }
    break;
  }
  if (!shared) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": bind-propagation shared needs the source's mount (\"", mount_point,
        "\") to be shared on the host; make it so with mount --make-shared ", mount_point));
  }
  int fd = ::open_tree(AT_FDCWD, m.source.c_str(),
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
  if (fd < 0) return LastErrnoStatus(absl::StrCat(what, ": open_tree"));
  return UniqueFd(fd);
}

absl::StatusOr<UniqueFd> CloneBindSourceFromNamespace(const ShimMount& m) {
  const std::string what = absl::StrCat("bind \"", m.source, "\" of ", m.source_mount_ns);
  int own = ::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (own < 0) return LastErrnoStatus(absl::StrCat(what, ": open own mount namespace"));
  UniqueFd own_ns(own);
  int other = ::open(m.source_mount_ns.c_str(), O_RDONLY | O_CLOEXEC);
  if (other < 0) return LastErrnoStatus(absl::StrCat(what, ": open"));
  UniqueFd other_ns(other);
  if (::setns(other_ns.get(), CLONE_NEWNS) != 0) return LastErrnoStatus(what + ": setns");
  int fd = ::open_tree(AT_FDCWD, m.source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  int clone_errno = errno;
  // Back before anything else: every later step expects this process's own namespace.
  if (::setns(own_ns.get(), CLONE_NEWNS) != 0) {
    if (fd >= 0) ::close(fd);
    return LastErrnoStatus(what + ": setns back to the container's mount namespace");
  }
  if (fd < 0) {
    errno = clone_errno;
    return LastErrnoStatus(what + ": open_tree");
  }
  return UniqueFd(fd);
}

absl::Status MountAtPath(const ShimMount& m, const std::string& target_path) {
  MountTarget target{-1, target_path, {}};
  return ApplyMount(m, target);
}

}  // namespace nodeagent::runtime
