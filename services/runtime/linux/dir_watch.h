#pragma once

// Wakes a waiter when files in one directory change (inotify): how the runtime follows a
// container's log and notices its exit record without polling.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/common/linux/unique_fd.h"

namespace nodeagent::runtime {

class DirWatch {
 public:
  // Watches `dir` for writes, closes after writing, and files renamed into it.
  static absl::StatusOr<DirWatch> Open(const std::string& dir);

  // Returns after a change (true), or false after `timeout` with no change. Pending events
  // are drained, so one call consumes every change that happened before it.
  absl::StatusOr<bool> WaitForChange(absl::Duration timeout);

 private:
  explicit DirWatch(linux::UniqueFd fd) : fd_(std::move(fd)) {}
  linux::UniqueFd fd_;
};

}  // namespace nodeagent::runtime
