#include "services/metrics/core/stats_reader.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/status_macros.h"

namespace nodeagent::metrics {

bool IsIgnoredInterface(absl::string_view name) {
  for (const char* prefix : {"lo", "veth", "docker", "nerdctl"}) {
    if (absl::StartsWith(name, prefix)) return true;
  }
  return false;
}

absl::Status StatsReader::ReadUsage(const TrackedContainer& container,
                                    ContainerSample* sample) const {
  sample->timestamp_unix_nanos = host_->NowUnixNanos();
  if (container.cgroup == nullptr) {
    return absl::NotFoundError(absl::StrCat("container ", container.info.id, ": no cgroup"));
  }
  NA_ASSIGN_OR_RETURN(sample->cgroup, container.cgroup->Read());
  sample->network.clear();
  // No handle: no process, or a network namespace shared with the host or another container.
  if (container.network != nullptr) {
    // The process may exit between the cgroup read and this one; the sample then has no
    // network figures rather than failing.
    absl::StatusOr<std::vector<InterfaceStats>> net = container.network->Read();
    if (net.ok()) {
      for (InterfaceStats& i : *net) {
        if (!IsIgnoredInterface(i.name)) sample->network.push_back(std::move(i));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ContainerSample> StatsReader::Read(const TrackedContainer& container) const {
  ContainerSample sample;
  NA_RETURN_IF_ERROR(ReadUsage(container, &sample));
  sample.info = container.info;
  return sample;
}

absl::StatusOr<NodeSample> StatsReader::ReadNode() const {
  absl::StatusOr<NodeSample> node = host_->ReadNode();
  if (node.ok()) {
    std::erase_if(node->network,
                  [](const InterfaceStats& i) { return IsIgnoredInterface(i.name); });
  }
  return node;
}

std::vector<ContainerSample> StatsReader::ReadAll(const std::vector<TrackedPtr>& containers,
                                                  int* errors) const {
  std::vector<ContainerSample> out;
  out.reserve(containers.size());
  for (const TrackedPtr& c : containers) {
    absl::StatusOr<ContainerSample> sample = Read(*c);
    if (sample.ok()) {
      out.push_back(*std::move(sample));
    } else if (!absl::IsNotFound(sample.status()) && errors != nullptr) {
      ++*errors;
    }
  }
  return out;
}

}  // namespace nodeagent::metrics
