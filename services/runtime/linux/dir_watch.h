#pragma once

// Wakes waiters when files in a directory change (inotify): how the runtime follows container
// logs and notices exit records without polling. One inotify instance and one thread serve
// every watcher: per-watcher instances would hit fs.inotify.max_user_instances (128 by
// default) with many followers, and closing an instance waits for an SRCU grace period
// (~3 ms here), which sat on the path of every `run`.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/linux/unique_fd.h"

namespace nodeagent::runtime {

class DirWatchHub;

// One watcher's view of one directory. Destroying it stops the watch.
class DirWatch {
 public:
  ~DirWatch();
  // True after a change since the previous call (or since the watch began), false after
  // `timeout` without one.
  bool WaitForChange(absl::Duration timeout);

 private:
  friend class DirWatchHub;
  DirWatch(DirWatchHub* hub, int wd) : hub_(hub), wd_(wd) {}
  DirWatchHub* const hub_;
  const int wd_;
  uint64_t changes_ = 0;  // Guarded by hub_->mu_.
  uint64_t seen_ = 0;     // Guarded by hub_->mu_.
};

class DirWatchHub {
 public:
  static absl::StatusOr<std::unique_ptr<DirWatchHub>> Start();
  ~DirWatchHub();

  // Watches `dir` for writes, closes after writing, and files renamed into it.
  absl::StatusOr<std::unique_ptr<DirWatch>> Watch(const std::string& dir);

 private:
  friend class DirWatch;
  DirWatchHub(linux::UniqueFd inotify, linux::UniqueFd wake);
  void Loop();
  void Unwatch(DirWatch* watch);

  linux::UniqueFd inotify_;
  linux::UniqueFd wake_;  // eventfd that ends the loop.
  absl::Mutex mu_;
  std::map<int, std::set<DirWatch*>> watchers_ ABSL_GUARDED_BY(mu_);  // By watch descriptor.
  std::thread thread_;
};

}  // namespace nodeagent::runtime
