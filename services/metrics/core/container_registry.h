#pragma once

// The containers the metrics service reports on, kept current from the runtime's event stream
// (the gRPC adapter feeds Apply). What is static for a container (its label set, its cgroup file
// paths) is computed once here, when it is first seen, and not again at each scrape.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/metrics/core/readers.h"
#include "services/metrics/core/types.h"

namespace nodeagent::metrics {

// A series' label set, kept both as pairs (prometheus-cpp's MetricFamily) and rendered once in
// the text exposition format (`id="/nodeagent/..",image="busybox",name="web"`, values escaped),
// which /metrics copies as is into every series of the container.
struct LabelSet {
  LabelSet() = default;
  explicit LabelSet(std::vector<std::pair<std::string, std::string>> label_pairs);
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string text;
};

// One container with what is cached for it.
struct TrackedContainer {
  ContainerInfo info;
  std::unique_ptr<CgroupHandle> cgroup;
  // Null when the container has no process (or no host reader was given).
  std::unique_ptr<NetworkHandle> network;
  // Prometheus labels in cAdvisor's form: id (the cgroup path), image, name, then
  // container_label_<key> for each container label.
  LabelSet labels;
};

using TrackedPtr = std::shared_ptr<const TrackedContainer>;

class ContainerRegistry {
 public:
  // `host` (optional) opens each running container's network namespace counters once.
  explicit ContainerRegistry(const CgroupReader* reader, const HostReader* host = nullptr)
      : reader_(reader), host_(host) {}

  // Applies one runtime event: "exists", "create", "start" and "exit" record the container's
  // current description; "remove" forgets it. Unknown types are ignored.
  void Apply(absl::string_view type, ContainerInfo info);
  // Forgets every container (the event stream is being re-established).
  void Clear();
  // Every running container, in id order.
  std::vector<TrackedPtr> Running() const;
  // Containers by id, unique id prefix or name; an empty list means all running ones.
  // NOT_FOUND names the reference that matched nothing, FAILED_PRECONDITION one that matched a
  // container that is not running, INVALID_ARGUMENT an ambiguous prefix.
  absl::StatusOr<std::vector<TrackedPtr>> Find(const std::vector<std::string>& refs) const;
  size_t size() const;

 private:
  const CgroupReader* const reader_;
  const HostReader* const host_;
  mutable absl::Mutex mu_;
  std::map<std::string, TrackedPtr> by_id_ ABSL_GUARDED_BY(mu_);
};

// cAdvisor's label set for a container (exposed for tests).
std::vector<std::pair<std::string, std::string>> ContainerLabels(const ContainerInfo& info);

// Appends `value` escaped as a label value of the text format (\\, \" and \n).
void AppendEscapedLabelValue(absl::string_view value, std::string* out);

// Whether the container shares another network namespace (--network host or container:NAME):
// its interfaces are not its own, and cAdvisor reports no network for it.
bool SharesNetworkNamespace(const ContainerInfo& info);

}  // namespace nodeagent::metrics
