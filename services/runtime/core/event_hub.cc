#include "services/runtime/core/event_hub.h"

namespace nodeagent::runtime {

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe(std::vector<ContainerEvent> initial) {
  auto subscription = std::unique_ptr<Subscription>(new Subscription(this));
  absl::MutexLock lock(&mu_);
  for (ContainerEvent& event : initial) subscription->queue_.push_back(std::move(event));
  subscribers_.insert(subscription.get());
  return subscription;
}

EventHub::Subscription::~Subscription() {
  absl::MutexLock lock(&hub_->mu_);
  hub_->subscribers_.erase(this);
}

void EventHub::Publish(const ContainerEvent& event) {
  absl::MutexLock lock(&mu_);
  for (Subscription* subscriber : subscribers_) {
    if (subscriber->overflowed_) continue;
    if (subscriber->queue_.size() >= kMaxQueued) {
      subscriber->overflowed_ = true;
      subscriber->queue_.clear();
      continue;
    }
    subscriber->queue_.push_back(event);
  }
}

absl::StatusOr<std::optional<ContainerEvent>> EventHub::Subscription::Next(absl::Duration timeout) {
  absl::MutexLock lock(&hub_->mu_);
  auto ready = [this]()
                   ABSL_SHARED_LOCKS_REQUIRED(hub_->mu_) { return overflowed_ || !queue_.empty(); };
  hub_->mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (overflowed_) {
    return absl::ResourceExhaustedError(
        "event watcher fell more than 10000 events behind; reconnect with include_existing");
  }
  if (queue_.empty()) return std::optional<ContainerEvent>();
  ContainerEvent event = std::move(queue_.front());
  queue_.pop_front();
  return std::optional<ContainerEvent>(std::move(event));
}

}  // namespace nodeagent::runtime
