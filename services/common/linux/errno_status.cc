#include "services/common/linux/errno_status.h"

#include "absl/strings/str_cat.h"

namespace nodeagent::linux {

absl::Status ErrnoStatus(int err, absl::string_view what) { return absl::ErrnoToStatus(err, what); }

}  // namespace nodeagent::linux
