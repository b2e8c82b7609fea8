#pragma once

// Reads containers' and the node's figures at the moment they are asked for: the one place
// the Prometheus collector and the gRPC stats API get their numbers from.

#include <vector>

#include "absl/status/statusor.h"
#include "services/metrics/core/container_registry.h"
#include "services/metrics/core/readers.h"
#include "services/metrics/core/types.h"

namespace nodeagent::metrics {

// cAdvisor leaves these interfaces out of container_network_* (loopback, and the host side of
// container links).
bool IsIgnoredInterface(absl::string_view name);

class StatsReader {
 public:
  StatsReader(const ContainerRegistry* registry, const HostReader* host)
      : registry_(registry), host_(host) {}

  // One container now. NOT_FOUND when its cgroup is gone.
  absl::StatusOr<ContainerSample> Read(const TrackedContainer& container) const;
  // The same without copying the container's static description: fills `sample`'s cgroup,
  // network and timestamp and leaves its `info` alone.
  absl::Status ReadUsage(const TrackedContainer& container, ContainerSample* sample) const;
  // Each of `containers` that still exists; `errors` (if given) counts other failures.
  std::vector<ContainerSample> ReadAll(const std::vector<TrackedPtr>& containers,
                                       int* errors = nullptr) const;
  // The node now; its interfaces without the ignored ones (as cAdvisor's root container).
  absl::StatusOr<NodeSample> ReadNode() const;

  const ContainerRegistry& registry() const { return *registry_; }
  const HostReader& host() const { return *host_; }

 private:
  const ContainerRegistry* const registry_;
  const HostReader* const host_;
};

}  // namespace nodeagent::metrics
