#pragma once

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nodeagent::linux {

// "what: strerror(err)" with the gRPC-compatible code absl assigns to that errno.
absl::Status ErrnoStatus(int err, absl::string_view what);

// Same, with the current errno.
inline absl::Status LastErrnoStatus(absl::string_view what) { return ErrnoStatus(errno, what); }

}  // namespace nodeagent::linux
