#include "services/runtime/linux/process_handle.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"

namespace nodeagent::runtime {

absl::StatusOr<ProcessHandle> ProcessHandle::Open(int pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("process ", pid, " is gone"));
    return linux::LastErrnoStatus(absl::StrCat("pidfd_open ", pid));
  }
  // pidfd_open's fds are always close-on-exec.
  return ProcessHandle(pid, linux::UniqueFd(fd));
}

bool ProcessHandle::Exited() const {
  struct pollfd pfd = {fd_.get(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0;
}

absl::Status ProcessHandle::Signal(int signal) const {
  if (::syscall(SYS_pidfd_send_signal, fd_.get(), signal, nullptr, 0) != 0) {
    if (errno == ESRCH) return absl::NotFoundError(absl::StrCat("process ", pid_, " has exited"));
    return linux::LastErrnoStatus(absl::StrCat("signal ", signal, " to process ", pid_));
  }
  return absl::OkStatus();
}

std::string ProcessCmdline(int pid) {
  auto cmdline = linux::ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  return cmdline.ok() ? *cmdline : std::string();
}

uint64_t ProcessStartTicks(int pid) {
  auto stat = linux::ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return 0;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the fields after the
  // last ')' start with field 3.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ', absl::SkipEmpty());
  uint64_t ticks = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &ticks)) return 0;
  return ticks;
}

}  // namespace nodeagent::runtime
