#pragma once

// The rootfs of a container in a user namespace of its own (ShimConfig uid/gid mappings).
//
// Choice: id-mapped lower layers, a chowned per-container upper. Root inside maps to an
// unprivileged host range, so the image's layers (owned by host root, shared by every
// container) would read as nobody's and the upper would not be writable. node-shim (host root)
// therefore builds the rootfs itself, inside the container's new mount namespace:
//   - every overlay lowerdir (and a bind rootfs) becomes an id-mapped mount
//     (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) with the container's user
//     namespace): host uid 0 on disk reads as the container's root, nothing on disk changes;
//   - the per-container upperdir (empty at first create) is chowned to the host ids of the
//     container's root, so what the container creates is owned on the host by the mapped
//     range (a file made by root inside is owned by e.g. 100000 on the host);
//   - overlay itself is mounted with node-shim's (host root) credentials, so it keeps using
//     trusted.overlay.* xattrs (the image's opaque directories keep working);
// and hands the container's first process an O_PATH fd of the mounted root, since that process
// (root of the user namespace only) may not traverse the host's 0700 state directories.
// The kernel must support id-mapped mounts on the layers' filesystem (5.19+ for overlayfs
// lower layers; ext4, xfs, btrfs; tmpfs from 6.3): otherwise the start fails naming the layer.

#include <sys/types.h>

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

// Host uid and gid of the container's root (container id 0) under `config`'s mappings;
// nullopt for either when 0 is not mapped.
std::optional<uint32_t> HostIdOfContainerRoot(const std::vector<ShimIdMapping>& mappings);

// Run by node-shim once `child`'s id maps are written: enters the child's mount namespace,
// chowns the overlay upperdirs, mounts config.rootfs_mounts (id-mapped as above) at
// <bundle>/rootfs there, returns to its own mount namespace and returns an O_PATH fd of the
// mounted root. Errors name the layer or mount that failed.
//
// The container's bind mounts (config.mounts of type bind) are cloned here too (open_tree,
// in the child's mount namespace) for the same reason: their sources may lie below host
// directories the mapped root cannot enter (the bundle's /etc/hostname, volumes).
struct UserNamespaceRootfs {
  linux::UniqueFd root;
  std::vector<linux::UniqueFd> binds;  // Index-aligned with config.mounts; unset for non-binds.
};
absl::StatusOr<UserNamespaceRootfs> MountUserNamespaceRootfs(pid_t child, const ShimConfig& config);

}  // namespace nodeagent::runtime
