#pragma once

// A process referred to by pidfd, so signals never hit a recycled PID.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"

namespace nodeagent::runtime {

class ProcessHandle {
 public:
  // pidfd_open(pid). NOT_FOUND when no such process exists.
  static absl::StatusOr<ProcessHandle> Open(int pid);

  int pid() const { return pid_; }
  // Readable (POLLIN) once the process has exited.
  int fd() const { return fd_.get(); }
  bool Exited() const;
  absl::Status Signal(int signal) const;

 private:
  ProcessHandle(int pid, linux::UniqueFd fd) : pid_(pid), fd_(std::move(fd)) {}
  int pid_;
  linux::UniqueFd fd_;
};

// NUL-separated argv of a running process, "" if it is gone.
std::string ProcessCmdline(int pid);

// When the process started, in clock ticks since boot (/proc/PID/stat field 22): with the PID,
// names one process for the host's uptime, however PIDs are recycled. 0 if it is gone.
uint64_t ProcessStartTicks(int pid);

}  // namespace nodeagent::runtime
