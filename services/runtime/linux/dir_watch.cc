#include "services/runtime/linux/dir_watch.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"

namespace nodeagent::runtime {

absl::StatusOr<DirWatch> DirWatch::Open(const std::string& dir) {
  linux::UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!fd) return linux::LastErrnoStatus("inotify_init1");
  if (::inotify_add_watch(fd.get(), dir.c_str(), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    return linux::LastErrnoStatus(absl::StrCat("inotify watch \"", dir, "\""));
  }
  return DirWatch(std::move(fd));
}

absl::StatusOr<bool> DirWatch::WaitForChange(absl::Duration timeout) {
  struct pollfd pfd = {fd_.get(), POLLIN, 0};
  int rc = ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (rc < 0) {
    if (errno == EINTR) return false;
    return linux::LastErrnoStatus("poll inotify");
  }
  if (rc == 0) return false;
  alignas(struct inotify_event) char buf[4096];
  while (::read(fd_.get(), buf, sizeof(buf)) > 0) {
  }
  return true;
}

}  // namespace nodeagent::runtime
