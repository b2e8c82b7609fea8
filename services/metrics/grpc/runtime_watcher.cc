#include "services/metrics/grpc/runtime_watcher.h"

#include <algorithm>
#include <utility>

#include "services/common/log.h"

namespace nodeagent::metrics {

ContainerInfo ContainerInfoFromProto(const v1::Container& c) {
  ContainerInfo info;
  info.id = c.id();
  // Unnamed containers go by their short id (what `nodectl ps` shows): a 64-digit name label
  // would double the size of every series.
  info.name = c.name().empty() ? c.id().substr(0, 12) : c.name();
  info.image = c.spec().image();
  info.labels.insert(c.spec().labels().begin(), c.spec().labels().end());
  info.cgroup_path = c.cgroup_path();
  info.running =
      c.state() == v1::CONTAINER_STATE_RUNNING || c.state() == v1::CONTAINER_STATE_PAUSED;
  info.pid = info.running ? c.pid() : 0;
  info.started_unix_nanos = c.started_unix_nanos();
  info.memory_limit_bytes = c.spec().resources().memory_bytes();
  info.cpu_quota_us = c.spec().resources().cpu_quota_us();
  info.cpu_period_us = c.spec().resources().cpu_period_us();
  info.pids_limit = c.spec().resources().pids_limit();
  info.network_mode = c.spec().network().mode();
  return info;
}

RuntimeWatcher::RuntimeWatcher(std::shared_ptr<grpc::Channel> runtime, ContainerRegistry* registry)
    : stub_(v1::RuntimeService::NewStub(std::move(runtime))), registry_(registry) {
  thread_ = std::thread([this] { Run(); });
}

RuntimeWatcher::~RuntimeWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (active_ != nullptr) active_->TryCancel();
  }
  thread_.join();
}

void RuntimeWatcher::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    grpc::ClientContext context;
    // The stream lasts as long as the service; waiting for the runtime to come up is fine.
    context.set_wait_for_ready(true);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      active_ = &context;
    }
    v1::WatchEventsRequest request;
    request.set_include_existing(true);
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
        stub_->WatchEvents(&context, request);
    v1::WatchEventsResponse event;
    bool first = true;
    while (reader->Read(&event)) {
      if (first) {
        LogInfo("following the runtime's container events");
        first = false;
        backoff = absl::Milliseconds(100);
      }
      registry_->Apply(event.type(), ContainerInfoFromProto(event.container()));
    }
    grpc::Status status = reader->Finish();
    // What the registry holds is no longer known to be current; the next stream starts with
    // the whole picture again ("exists" events).
    registry_->Clear();
    {
      absl::MutexLock lock(&mu_);
      active_ = nullptr;
      if (stopping_) return;
      if (!first) {
        LogWarning("runtime event stream ended (%s); reconnecting", status.error_message());
      }
      // Wait before retrying, unless told to stop.
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      if (stopping_) return;
    }
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace nodeagent::metrics
