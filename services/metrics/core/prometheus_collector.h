#pragma once

// The Prometheus side of the metrics service: a prometheus-cpp Collectable that, each time
// /metrics is scraped, reads every running container's cgroup (and the node's totals) and
// returns them under cAdvisor's metric names, types and labels. No timer, no cache of values;
// only what is static is kept: per container its label set (in the registry, rendered once),
// per family its HELP and TYPE lines.
//
// The same emission code feeds two encoders: Collect() builds prometheus-cpp MetricFamily
// objects (the Collectable interface), AppendText() writes the text exposition format straight
// into a buffer, copying the cached label text, which is what /metrics serves (no per-series
// allocation, no iostream).

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

#include "services/metrics/core/stats_reader.h"

namespace nodeagent::metrics {

// A Collectable that can also write its families in the text exposition format (version
// 0.0.4) itself, the same series Collect() returns.
class TextCollectable : public prometheus::Collectable {
 public:
  virtual void AppendText(std::string* out) const = 0;
};

class CadvisorCollector : public TextCollectable {
 public:
  explicit CadvisorCollector(const StatsReader* stats) : stats_(stats) {}
  std::vector<prometheus::MetricFamily> Collect() const override;
  void AppendText(std::string* out) const override;

 private:
  const StatsReader* const stats_;
};

// One container's reading with its static description and cached label set.
struct LabeledSample {
  const LabelSet* labels;
  const ContainerInfo* info;
  // cgroup, network and timestamp (its `info` is not filled).
  ContainerSample usage;
};

// The metric families for the given samples (exposed for unit tests). `node` may be null (the
// node could not be read); `scrape_errors` is the number of reads that failed.
std::vector<prometheus::MetricFamily> BuildFamilies(const std::vector<LabeledSample>& samples,
                                                    const NodeSample* node, const HostReader& host,
                                                    int64_t now_nanos, int scrape_errors);
// The same series in the text exposition format, appended to `out`.
void AppendFamiliesText(const std::vector<LabeledSample>& samples, const NodeSample* node,
                        const HostReader& host, int64_t now_nanos, int scrape_errors,
                        std::string* out);

// Appends `value` as the text format writes a sample value: integers (below 2^53) in decimal,
// others in the shortest form that reads back the same double, NaN and +Inf/-Inf.
void AppendSampleValue(double value, std::string* out);

}  // namespace nodeagent::metrics
