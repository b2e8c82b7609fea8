#pragma once

// What /proc says about a process: its namespaces (the seed exercise's lsns) and its mount
// table with propagation (what `findmnt -o +PROPAGATION` shows).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

struct NamespaceInode {
  std::string type;  // "mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time".
  uint64_t inode = 0;
};

// readlink(/proc/PID/ns/TYPE) for every type the kernel has; NOT_FOUND if the process is gone.
absl::StatusOr<std::vector<NamespaceInode>> ReadNamespaces(int pid);
// The calling process's own namespaces: the host's, for a service running on the host. (PID 1's
// are not always readable, e.g. under a sandboxing init.)
absl::StatusOr<std::vector<NamespaceInode>> ReadOwnNamespaces();

struct MountInfoEntry {
  int id = 0;
  int parent_id = 0;
  std::string root;         // Path of the mount's root within its filesystem.
  std::string target;       // Mount point, relative to the process's root.
  std::string options;      // Per-mount options (rw, nosuid, ...).
  std::string propagation;  // "shared:N", "master:N", "shared:N master:M", or "private".
  std::string fstype;
  std::string source;
  std::string super_options;
};

// Parses the text of /proc/PID/mountinfo (see proc(5)); octal escapes (\040) are decoded.
absl::StatusOr<std::vector<MountInfoEntry>> ParseMountInfo(absl::string_view text);
absl::StatusOr<std::vector<MountInfoEntry>> ReadMountInfo(int pid);

}  // namespace nodeagent::runtime
