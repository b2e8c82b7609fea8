#include "services/runtime/linux/warm_shim_pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

namespace nodeagent::runtime {
namespace {

// How long a retired slot's node-shim gets to kill its child and remove its cgroup.
constexpr absl::Duration kRetireTimeout = absl::Seconds(3);
// After a slot failed to become ready, the next try waits this long (a broken shim binary or
// cgroup must not turn the refill into a busy loop).
constexpr absl::Duration kRetryDelay = absl::Seconds(2);

// Polls at least once, however short `timeout` is.
bool WaitReadable(int fd, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int64_t left_ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    struct pollfd pfd = {fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left_ms));
    if (rc > 0) return true;
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || absl::Now() >= deadline) return false;
  }
}

// The "ready\n" line a warm node-shim writes before anything else.
absl::Status AwaitReady(int fd, absl::Duration timeout) {
  std::string got;
  while (got.size() < 6) {
    if (!WaitReadable(fd, timeout)) {
      return absl::DeadlineExceededError("warm node-shim did not get ready in time");
    }
    char buf[6];
    ssize_t n = ::read(fd, buf, 6 - got.size());  // Never past the line: the report follows.
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("warm node-shim ended before it was ready");
    got.append(buf, static_cast<size_t>(n));
  }
  if (got != "ready\n") {
    return absl::InternalError(absl::StrCat("warm node-shim wrote \"", got, "\", not ready"));
  }
  return absl::OkStatus();
}

}  // namespace

WarmShim::~WarmShim() {
  if (!control_) return;  // Launched, retired, or moved from.
  control_.Reset();       // EOF before a go: node-shim ends the slot.
  Finish();
}

void WarmShim::Finish() {
  if (pidfd_ && !WaitReadable(pidfd_.get(), kRetireTimeout)) {
    LogWarning("warm node-shim %d did not end in time; killing it", shim_pid_);
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    WaitReadable(pidfd_.get(), kRetireTimeout);
  }
  if (cgroups_ != nullptr) {
    if (absl::Status s = cgroups_->Destroy(cgroup_id_); !s.ok()) LogWarning("%s", s.ToString());
  }
}

bool WarmShim::Alive() const {
  return !pidfd_ || !WaitReadable(pidfd_.get(), absl::ZeroDuration());
}

absl::StatusOr<LaunchedShim> WarmShim::Launch(const std::string& bundle, absl::Duration timeout) {
  std::string go = absl::StrCat("go ", bundle, "\n");
  absl::Status sent = linux::WriteAll(control_.get(), go);
  control_.Reset();  // Sent or not, the slot is used up.
  if (!sent.ok()) return Annotate(sent, "warm node-shim: send the go");
  absl::StatusOr<int> container_pid = ReadStartReport(report_.get(), timeout);
  if (!container_pid.ok()) {
    if (absl::IsDeadlineExceeded(container_pid.status())) {
      ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    }
    return container_pid.status();
  }
  return LaunchedShim{shim_pid_, *container_pid};
}

WarmShimPool::WarmShimPool(WarmShimPoolOptions options, CgroupDriver* cgroups)
    : options_(std::move(options)), cgroups_(cgroups) {
  refill_ = std::thread([this] { RefillLoop(); });
}

WarmShimPool::~WarmShimPool() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  refill_.join();
  std::deque<WarmShim> slots;
  {
    absl::MutexLock lock(&mu_);
    slots.swap(ready_);
  }
  // Retire all at once, then wait for each: their clean-ups run side by side.
  for (WarmShim& slot : slots) slot.control_.Reset();
  for (WarmShim& slot : slots) slot.Finish();
}

std::optional<WarmShim> WarmShimPool::Take() {
  std::deque<WarmShim> dead;  // Retired after the lock is released (declared first).
  absl::MutexLock lock(&mu_);
  while (!ready_.empty()) {
    WarmShim slot = std::move(ready_.front());
    ready_.pop_front();
    ++wakes_;
    if (!slot.Alive()) {
      LogWarning("warm node-shim %d ended while ready; replacing it", slot.shim_pid());
      dead.push_back(std::move(slot));
      continue;
    }
    hold_until_ = absl::Now() + options_.refill_hold;
    return slot;
  }
  return std::nullopt;
}

void WarmShimPool::Resume() {
  absl::MutexLock lock(&mu_);
  if (hold_until_ == absl::InfinitePast()) return;
  hold_until_ = absl::InfinitePast();
  ++wakes_;
}

absl::StatusOr<WarmShim> WarmShimPool::MakeSlot() {
  WarmShim slot;
  absl::BitGen random;
  slot.cgroup_id_ =
      absl::StrCat(kCgroupPrefix, absl::StrFormat("%016x", absl::Uniform<uint64_t>(random)));
  NA_ASSIGN_OR_RETURN(std::vector<std::string> dirs, cgroups_->Create(slot.cgroup_id_, {}));
  slot.cgroups_ = cgroups_;
  std::vector<std::string> args = {options_.shim_path, "warm"};
  for (const std::string& dir : dirs) {
    args.push_back("--cgroup");
    args.push_back(dir);
  }
  int report[2], control[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    (void)cgroups_->Destroy(slot.cgroup_id_);
    return linux::LastErrnoStatus("pipe2");
  }
  slot.report_.Reset(report[0]);
  linux::UniqueFd report_write(report[1]);
  if (::pipe2(control, O_CLOEXEC) != 0) {
    (void)cgroups_->Destroy(slot.cgroup_id_);
    return linux::LastErrnoStatus("pipe2");
  }
  linux::UniqueFd control_read(control[0]);
  slot.control_.Reset(control[1]);
  absl::StatusOr<pid_t> pid =
      SpawnShimProcess(options_.shim_path, std::move(args), report_write.get(), control_read.get());
  if (!pid.ok()) {
    slot.control_.Reset();
    (void)cgroups_->Destroy(slot.cgroup_id_);
    return pid.status();
  }
  slot.shim_pid_ = *pid;
  report_write.Reset();
  control_read.Reset();
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
  if (pidfd >= 0) slot.pidfd_.Reset(pidfd);
  // From here the slot's node-shim owns the cgroup: it removes it whenever the slot ends.
  if (absl::Status ready = AwaitReady(slot.report_.get(), options_.ready_timeout); !ready.ok()) {
    return ready;  // ~WarmShim retires it.
  }
  slot.ready_since_ = absl::Now();
  return slot;
}

void WarmShimPool::RefillLoop() {
  absl::Duration delay = absl::ZeroDuration();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      const uint64_t wakes = wakes_;
      const absl::Time now = absl::Now();
      auto wake = [&]() {
        return closing_ || wakes_ != wakes ||
               (delay == absl::ZeroDuration() && hold_until_ <= now &&
                static_cast<int>(ready_.size()) < options_.size);
      };
      absl::Duration wait = options_.max_age / 4;
      if (delay > absl::ZeroDuration()) wait = delay;
      if (hold_until_ > now) wait = std::min(wait, hold_until_ - now);
      mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
      if (closing_) return;
      delay = absl::ZeroDuration();
      if (hold_until_ > absl::Now()) continue;
    }
    // Old slots out (outside the lock: retiring waits for the shim).
    std::deque<WarmShim> old;
    {
      absl::MutexLock lock(&mu_);
      while (!ready_.empty() && absl::Now() - ready_.front().ready_since() > options_.max_age) {
        old.push_back(std::move(ready_.front()));
        ready_.pop_front();
      }
    }
    old.clear();
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (closing_ || static_cast<int>(ready_.size()) >= options_.size) break;
      }
      absl::StatusOr<WarmShim> slot = MakeSlot();
      if (!slot.ok()) {
        LogWarning("warm node-shim: %s (starts stay cold for now)", slot.status().ToString());
        delay = kRetryDelay;
        break;
      }
      absl::MutexLock lock(&mu_);
      ready_.push_back(*std::move(slot));
    }
  }
}

}  // namespace nodeagent::runtime
