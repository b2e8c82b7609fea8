#pragma once

// Fan-out of container lifecycle events to any number of watchers (the metrics service follows
// them to add and drop containers between scrapes). Each watcher has its own bounded queue; a
// watcher that falls too far behind is cut off rather than slowing the runtime down.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/runtime/core/container.h"

namespace nodeagent::runtime {

struct ContainerEvent {
  std::string type;  // "exists", "create", "start", "exit", "remove".
  ContainerRecord container;
  int64_t unix_nanos = 0;
};

class EventHub {
 public:
  static constexpr size_t kMaxQueued = 10000;

  class Subscription {
   public:
    ~Subscription();
    // The next event, or nullopt after `timeout` without one. RESOURCE_EXHAUSTED once the
    // watcher fell more than kMaxQueued events behind.
    absl::StatusOr<std::optional<ContainerEvent>> Next(absl::Duration timeout);

   private:
    friend class EventHub;
    explicit Subscription(EventHub* hub) : hub_(hub) {}
    EventHub* const hub_;
    std::deque<ContainerEvent> queue_;  // Guarded by hub_->mu_.
    bool overflowed_ = false;           // Guarded by hub_->mu_.
  };

  // `initial` events are queued for this subscriber only, ahead of anything published later.
  std::unique_ptr<Subscription> Subscribe(std::vector<ContainerEvent> initial = {});
  void Publish(const ContainerEvent& event);

 private:
  absl::Mutex mu_;
  std::set<Subscription*> subscribers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeagent::runtime
