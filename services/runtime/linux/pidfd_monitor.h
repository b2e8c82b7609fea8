#pragma once

// One thread that waits on many pidfds (epoll) and calls back when a process exits: how the
// runtime notices every container's end without a thread per container.

#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/process_handle.h"

namespace nodeagent::runtime {

class PidfdMonitor {
 public:
  using ExitCallback = std::function<void(const std::string& key)>;

  static absl::StatusOr<std::unique_ptr<PidfdMonitor>> Start(ExitCallback on_exit);
  ~PidfdMonitor();

  // Calls on_exit(key) once, from the monitor thread, when `process` exits (at once if it
  // already has). The handle is kept until then.
  absl::Status Watch(const std::string& key, ProcessHandle process);

 private:
  PidfdMonitor(linux::UniqueFd epoll, linux::UniqueFd wake, ExitCallback on_exit);
  void Loop();

  linux::UniqueFd epoll_;
  linux::UniqueFd wake_;  // eventfd: ends the loop.
  ExitCallback on_exit_;
  absl::Mutex mu_;
  std::map<int, std::pair<std::string, ProcessHandle>> watched_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace nodeagent::runtime
