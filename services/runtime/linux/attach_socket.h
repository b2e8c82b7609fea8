#pragma once

// The Unix sockets of the attach protocol (shim_protocol.h): <dir>/attach.sock, where <dir> is
// a bundle or an exec dir. Bundle paths can exceed sun_path (108 bytes), so both ends go
// through "/proc/self/fd/<dir fd>/attach.sock", which is short whatever the directory.
// Linked by node-shim (listening) and the runtime service (connecting).

#include <string>

#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"

namespace nodeagent::runtime {

// Binds and listens on <dir>/attach.sock (mode 0600, a stale socket file is replaced). The
// fd is O_CLOEXEC and O_NONBLOCK.
absl::StatusOr<linux::UniqueFd> ListenAttachSocket(const std::string& dir);

// Connects to <dir>/attach.sock; the fd is O_CLOEXEC and blocking. UNAVAILABLE when nobody
// listens there (the shim is gone: read exit.json instead).
absl::StatusOr<linux::UniqueFd> ConnectAttachSocket(const std::string& dir);

}  // namespace nodeagent::runtime
