#pragma once

// The Prometheus side of the metrics service: a prometheus-cpp Collectable that, each time
// /metrics is scraped, reads every running container's cgroup (and the node's totals) and
// returns them under cAdvisor's metric names, types and labels. No timer, no cache of values;
// only what is static per container (labels, paths) is kept, in the registry.

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

#include "services/metrics/core/stats_reader.h"

namespace nodeagent::metrics {

class CadvisorCollector : public prometheus::Collectable {
 public:
  explicit CadvisorCollector(const StatsReader* stats) : stats_(stats) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const StatsReader* const stats_;
};

// A container's sample with its cached label set.
struct LabeledSample {
  const std::vector<std::pair<std::string, std::string>>* labels;
  ContainerSample sample;
};

// The metric families for the given samples (exposed for unit tests). `node` may be null (the
// node could not be read); `scrape_errors` is the number of reads that failed.
std::vector<prometheus::MetricFamily> BuildFamilies(const std::vector<LabeledSample>& samples,
                                                    const NodeSample* node, const HostReader& host,
                                                    int64_t now_nanos, int scrape_errors);

}  // namespace nodeagent::metrics
