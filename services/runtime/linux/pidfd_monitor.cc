#include "services/runtime/linux/pidfd_monitor.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/log.h"

namespace nodeagent::runtime {

absl::StatusOr<std::unique_ptr<PidfdMonitor>> PidfdMonitor::Start(ExitCallback on_exit) {
  linux::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return linux::LastErrnoStatus("epoll_create1");
  linux::UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return linux::LastErrnoStatus("eventfd");
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = wake.get();
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev) != 0) {
    return linux::LastErrnoStatus("epoll_ctl add eventfd");
  }
  auto monitor = std::unique_ptr<PidfdMonitor>(
      new PidfdMonitor(std::move(epoll), std::move(wake), std::move(on_exit)));
  monitor->thread_ = std::thread([m = monitor.get()] { m->Loop(); });
  return monitor;
}

PidfdMonitor::PidfdMonitor(linux::UniqueFd epoll, linux::UniqueFd wake, ExitCallback on_exit)
    : epoll_(std::move(epoll)), wake_(std::move(wake)), on_exit_(std::move(on_exit)) {}

PidfdMonitor::~PidfdMonitor() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

absl::Status PidfdMonitor::Watch(const std::string& key, ProcessHandle process) {
  absl::MutexLock lock(&mu_);
  int fd = process.fd();
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return linux::LastErrnoStatus(absl::StrCat("epoll_ctl add pidfd of ", key));
  }
  watched_.emplace(fd, std::make_pair(key, std::move(process)));
  return absl::OkStatus();
}

void PidfdMonitor::Loop() {
  struct epoll_event events[64];
  while (true) {
    int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LogError("pidfd monitor: epoll_wait: %s", strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) return;
      std::string key;
      {
        absl::MutexLock lock(&mu_);
        auto it = watched_.find(fd);
        if (it == watched_.end()) continue;
        key = it->second.first;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        watched_.erase(it);  // Closes the pidfd.
      }
      on_exit_(key);
    }
  }
}

}  // namespace nodeagent::runtime
