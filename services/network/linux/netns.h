#pragma once

// Network namespaces pinned by a bind mount on a file, as `ip netns add` makes them, under a
// directory that is its own private mount point (so the pins never propagate anywhere and the
// host's propagation settings are never touched).

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"
#include "services/network/linux/netlink.h"

namespace nodeagent::network::linux {

// Makes `dir` (created if missing) a private mount point: a bind mount of itself, then
// MS_PRIVATE on that mount only. Idempotent.
absl::Status EnsurePrivateMountPoint(const std::string& dir);
// Undoes EnsurePrivateMountPoint (lazily); a `dir` that is no mount point is left as it is.
absl::Status RemoveMountPoint(const std::string& dir);
bool IsMountPoint(const std::string& path);

// A new network namespace with `lo` up, not pinned anywhere yet (it lives while `netns` is
// open), and an rtnetlink socket inside it.
struct PreparedNetns {
  nodeagent::linux::UniqueFd netns;
  Netlink netlink;
};
absl::StatusOr<PreparedNetns> PrepareNetns();
// Pins the namespace `netns_fd` refers to at `path` (a new file) with a bind mount.
absl::Status PinNetns(int netns_fd, const std::string& path);
// Opens the namespace pinned at `path`; NOT_FOUND when nothing is pinned there.
absl::StatusOr<nodeagent::linux::UniqueFd> OpenPinnedNetns(const std::string& path);
// Unmounts the pin (lazily) and removes the file; a missing pin or file is not an error.
absl::Status RemovePinnedNetns(const std::string& path);

// Writes `value` to /proc/sys/net/<key> ("ipv4/conf/br0/route_localnet").
absl::Status WriteNetSysctl(const std::string& key, const std::string& value);
absl::StatusOr<std::string> ReadNetSysctl(const std::string& key);

}  // namespace nodeagent::network::linux

namespace nodeagent::network::linux {

// Replaces the content of `path` keeping its inode (created if missing): a file bind-mounted
// into a container (its /etc/hosts) shows the new content only if it is the same file.
absl::Status RewriteFileInPlace(const std::string& path, const std::string& content);

}  // namespace nodeagent::network::linux

namespace nodeagent::network::linux {

// Writes `data` to a temporary file beside `path` and renames it over `path`: readers see the
// old or the new content. With `durable` the data is fsynced first (survives a power loss);
// without, it survives a crash of the process, which is all that state living no longer than
// the pinned namespaces (they go with a reboot) needs.
absl::Status ReplaceFile(const std::string& path, const std::string& data, bool durable);

}  // namespace nodeagent::network::linux
