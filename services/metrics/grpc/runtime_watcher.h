#pragma once

// Follows the runtime service's WatchEvents stream (include_existing=true) and keeps the
// metrics registry current: the metrics service's only call to another service. When the
// stream breaks (the runtime restarted), the registry is cleared and the stream re-opened, so
// its "exists" events rebuild it; until then scrapes show no containers rather than stale ones.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "nodeagent/v1/runtime.grpc.pb.h"
#include "services/metrics/core/container_registry.h"

namespace nodeagent::metrics {

class RuntimeWatcher {
 public:
  // Starts following at once, on a thread of its own.
  RuntimeWatcher(std::shared_ptr<grpc::Channel> runtime, ContainerRegistry* registry);
  ~RuntimeWatcher();  // Cancels the stream and joins the thread.

  RuntimeWatcher(const RuntimeWatcher&) = delete;
  RuntimeWatcher& operator=(const RuntimeWatcher&) = delete;

 private:
  void Run();

  std::unique_ptr<v1::RuntimeService::Stub> stub_;
  ContainerRegistry* const registry_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* active_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

// The core description of a container from the runtime's message.
ContainerInfo ContainerInfoFromProto(const v1::Container& container);

}  // namespace nodeagent::metrics
