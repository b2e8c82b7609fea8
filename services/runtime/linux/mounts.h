#pragma once

// mount(2) and friends for building a container's filesystem. Every error names what was
// mounted where, with type, flags and data, as runc's mount errors do:
//   mount "overlay" -> "/var/lib/nodeagent/runtime/c1/rootfs" (overlay, 0, "lowerdir=..."): ...
// Paths inside the container are resolved below a root directory fd, never following a
// symlink out of it (openat2 RESOLVE_IN_ROOT), so an image cannot aim a mount at the host.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

// mount(source, target, type, flags, data). `shown_target` replaces `target` in the error
// message (callers mounting onto /proc/self/fd/N pass the path the user knows).
absl::Status Mount(const std::string& source, const std::string& target, const std::string& type,
                   unsigned long flags, const std::string& data,
                   absl::string_view shown_target = {});

// What a fd refers to, as a path mount(2) accepts: "/proc/self/fd/N". The magic link leads
// to the very inode the fd holds, so nothing can swap the path between resolve and mount.
std::string FdPath(int fd);

enum class CreateAs { kNothing, kDirectory, kFile };

// Opens (O_PATH) absolute container path `path` below `root_fd`: symlinks and ".." resolve
// as if `root_fd` were "/". With `create`, missing directories on the way are made (0755) and
// a missing last component is made as a directory or an empty file. `path` must be absolute
// and contain no ".." component.
absl::StatusOr<linux::UniqueFd> OpenInRoot(int root_fd, absl::string_view path,
                                           CreateAs create = CreateAs::kNothing);

// Applies one ShimMount at container path m.destination below `root_fd`, creating the
// destination (a file when a bind source is not a directory). Binds are remounted when flags
// such as "ro" need it, keeping nosuid/nodev/noexec the source already had; propagation
// ("rslave", ...) is applied last.
//
// `detached_bind` >= 0: a bind's source cloned earlier (CloneSharedBindSource, or node-shim's
// clone for a user namespace), attached with move_mount instead of a new bind (so a shared
// one stays in the source's peer group).
absl::Status MountInRoot(int root_fd, const ShimMount& m, int detached_bind = -1);

// For a bind with "shared"/"rshared" propagation, before the mount namespace is made a slave
// of the host's (rootfs.h): a detached clone (open_tree) of m.source that is a peer of the
// host's mount, so that mounts made below the container's copy propagate back to the host,
// as Docker's rshared binds do. The source's mount must be shared on the host already (the
// runtime never changes the host's propagation): FAILED_PRECONDITION naming it otherwise.
absl::StatusOr<linux::UniqueFd> CloneSharedBindSource(const ShimMount& m);
// A clone of `m.source` as seen in the mount namespace `m.source_mount_ns`: enters that
// namespace, clones the mount (open_tree) and comes back. The caller must be single-threaded
// and own its fs_struct (a clone without CLONE_FS), as setns(CLONE_NEWNS) requires.
absl::StatusOr<linux::UniqueFd> CloneBindSourceFromNamespace(const ShimMount& m);

// Applies one ShimMount at host path `target` (the rootfs itself).
absl::Status MountAtPath(const ShimMount& m, const std::string& target);

// Sets the per-mount flags in `flags` (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, access-time
// modes) on the existing mount at `target`, and with `recursive` on every mount below it.
// Flags already set stay set. `shown` names the target in errors.
absl::Status SetMountAttributes(const std::string& target, unsigned long flags, bool recursive,
                                absl::string_view shown);

}  // namespace nodeagent::runtime
