#pragma once

// Parsing of mount options as they appear in ShimMount::options (and OCI config.json,
// fstab, `mount -o`) into the three things mount(2) takes separately: flags, the
// filesystem-specific data string, and propagation, which the kernel only accepts in a call of
// its own.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nodeagent::runtime {

struct MountOptions {
  unsigned long flags = 0;        // MS_* flags for the call that creates the mount.
  unsigned long propagation = 0;  // MS_SHARED|MS_SLAVE|MS_PRIVATE|MS_UNBINDABLE, maybe |MS_REC.
  std::string data;               // Options the kernel does not know as flags, joined by ','.

  bool IsBind() const;
};

// "ro", "nosuid", "rbind", "rslave", "mode=755", ... Later options override earlier ones
// ("ro" then "rw" is read-write), as mount(8) does. An empty option is INVALID_ARGUMENT.
absl::StatusOr<MountOptions> ParseMountOptions(const std::vector<std::string>& options);

// "MS_BIND|MS_REC", for error messages; "0" for none.
std::string MountFlagsToString(unsigned long flags);

}  // namespace nodeagent::runtime
