#include "services/runtime/linux/dir_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/log.h"

namespace nodeagent::runtime {

absl::StatusOr<std::unique_ptr<DirWatchHub>> DirWatchHub::Start() {
  linux::UniqueFd inotify(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!inotify) return linux::LastErrnoStatus("inotify_init1");
  linux::UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return linux::LastErrnoStatus("eventfd");
  auto hub = std::unique_ptr<DirWatchHub>(new DirWatchHub(std::move(inotify), std::move(wake)));
  hub->thread_ = std::thread([h = hub.get()] { h->Loop(); });
  return hub;
}

DirWatchHub::DirWatchHub(linux::UniqueFd inotify, linux::UniqueFd wake)
    : inotify_(std::move(inotify)), wake_(std::move(wake)) {}

DirWatchHub::~DirWatchHub() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::unique_ptr<DirWatch>> DirWatchHub::Watch(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  // The same directory yields the same descriptor; watchers share it.
  int wd =
      ::inotify_add_watch(inotify_.get(), dir.c_str(), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO);
  if (wd < 0) return linux::LastErrnoStatus(absl::StrCat("inotify watch \"", dir, "\""));
  auto watch = std::unique_ptr<DirWatch>(new DirWatch(this, wd));
  watchers_[wd].insert(watch.get());
  return watch;
}

void DirWatchHub::Unwatch(DirWatch* watch) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(watch->wd_);
  if (it == watchers_.end()) return;
  it->second.erase(watch);
  if (it->second.empty()) {
    // Fails harmlessly when the directory is already gone (the kernel dropped the watch).
    ::inotify_rm_watch(inotify_.get(), it->first);
    watchers_.erase(it);
  }
}

DirWatch::~DirWatch() { hub_->Unwatch(this); }

bool DirWatch::WaitForChange(absl::Duration timeout) {
  absl::MutexLock lock(&hub_->mu_);
  auto changed = [this]() ABSL_SHARED_LOCKS_REQUIRED(hub_->mu_) { return changes_ != seen_; };
  bool got = hub_->mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  seen_ = changes_;
  return got;
}

void DirWatchHub::Loop() {
  alignas(struct inotify_event) char buf[16384];
  struct pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LogError("dir watch: poll: %s", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    ssize_t n = ::read(inotify_.get(), buf, sizeof(buf));
    if (n <= 0) continue;
    absl::MutexLock lock(&mu_);
    for (char* p = buf; p < buf + n;) {
      auto* event = reinterpret_cast<struct inotify_event*>(p);
      if (auto it = watchers_.find(event->wd); it != watchers_.end()) {
        for (DirWatch* watch : it->second) ++watch->changes_;
      }
      p += sizeof(struct inotify_event) + event->len;
    }
  }
}

}  // namespace nodeagent::runtime
