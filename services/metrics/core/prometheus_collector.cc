#include "services/metrics/core/prometheus_collector.h"

#include <initializer_list>
#include <utility>

#include "services/common/log.h"

namespace nodeagent::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<std::pair<std::string, std::string>>;

// Families in the order they are served. Names, types and help as cAdvisor has them.
enum Family : int {
  kCpuUsage,
  kCpuUser,
  kCpuSystem,
  kCfsPeriods,
  kCfsThrottledPeriods,
  kCfsThrottledSeconds,
  kMemoryUsage,
  kMemoryMaxUsage,
  kMemoryWorkingSet,
  kMemoryRss,
  kMemoryCache,
  kMemorySwap,
  kMemoryMappedFile,
  kMemoryFailcnt,
  kMemoryFailures,
  kOomEvents,
  kSpecMemoryLimit,
  kSpecCpuQuota,
  kSpecCpuPeriod,
  kThreads,
  kThreadsMax,
  kNetRxBytes,
  kNetRxPackets,
  kNetRxErrors,
  kNetRxDropped,
  kNetTxBytes,
  kNetTxPackets,
  kNetTxErrors,
  kNetTxDropped,
  kFsReadsBytes,
  kFsWritesBytes,
  kFsReads,
  kFsWrites,
  kStartTime,
  kLastSeen,
  kScrapeError,
  kMachineCores,
  kMachineMemory,
  kFamilyCount,
};

struct FamilySpec {
  const char* name;
  const char* help;
  MetricType type;
};

constexpr FamilySpec kFamilies[kFamilyCount] = {
    {"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.",
     MetricType::Counter},
    {"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.",
     MetricType::Counter},
    {"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.",
     MetricType::Counter},
    {"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
     MetricType::Counter},
    {"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
     MetricType::Counter},
    {"container_cpu_cfs_throttled_seconds_total",
     "Total time duration the container has been throttled.", MetricType::Counter},
    {"container_memory_usage_bytes",
     "Current memory usage in bytes, including all memory "
     "regardless of when it was accessed",
     MetricType::Gauge},
    {"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes",
     MetricType::Gauge},
    {"container_memory_working_set_bytes", "Current working set in bytes.", MetricType::Gauge},
    {"container_memory_rss", "Size of RSS in bytes.", MetricType::Gauge},
    {"container_memory_cache", "Number of bytes of page cache memory.", MetricType::Gauge},
    {"container_memory_swap", "Container swap usage in bytes.", MetricType::Gauge},
    {"container_memory_mapped_file", "Size of memory mapped files in bytes.", MetricType::Gauge},
    {"container_memory_failcnt", "Number of memory usage hits limits", MetricType::Counter},
    {"container_memory_failures_total", "Cumulative count of memory allocation failures.",
     MetricType::Counter},
    {"container_oom_events_total", "Count of out of memory events observed for the container",
     MetricType::Counter},
    {"container_spec_memory_limit_bytes", "Memory limit for the container.", MetricType::Gauge},
    {"container_spec_cpu_quota", "CPU quota of the container.", MetricType::Gauge},
    {"container_spec_cpu_period", "CPU period of the container.", MetricType::Gauge},
    {"container_threads", "Number of threads running inside the container", MetricType::Gauge},
    {"container_threads_max",
     "Maximum number of threads allowed inside the container, infinity if value is zero",
     MetricType::Gauge},
    {"container_network_receive_bytes_total", "Cumulative count of bytes received",
     MetricType::Counter},
    {"container_network_receive_packets_total", "Cumulative count of packets received",
     MetricType::Counter},
    {"container_network_receive_errors_total",
     "Cumulative count of errors encountered while receiving", MetricType::Counter},
    {"container_network_receive_packets_dropped_total",
     "Cumulative count of packets dropped while receiving", MetricType::Counter},
    {"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted",
     MetricType::Counter},
    {"container_network_transmit_packets_total", "Cumulative count of packets transmitted",
     MetricType::Counter},
    {"container_network_transmit_errors_total",
     "Cumulative count of errors encountered while transmitting", MetricType::Counter},
    {"container_network_transmit_packets_dropped_total",
     "Cumulative count of packets dropped while transmitting", MetricType::Counter},
    {"container_fs_reads_bytes_total", "Cumulative count of bytes read", MetricType::Counter},
    {"container_fs_writes_bytes_total", "Cumulative count of bytes written", MetricType::Counter},
    {"container_fs_reads_total", "Cumulative count of reads completed", MetricType::Counter},
    {"container_fs_writes_total", "Cumulative count of writes completed", MetricType::Counter},
    {"container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
     MetricType::Gauge},
    {"container_last_seen", "Last time a container was seen by the exporter", MetricType::Gauge},
    {"container_scrape_error",
     "1 if there was an error while getting container metrics, 0 otherwise", MetricType::Gauge},
    {"machine_cpu_cores", "Number of logical CPU cores.", MetricType::Gauge},
    {"machine_memory_bytes", "Amount of memory installed on the machine.", MetricType::Gauge},
};

class Emitter {
 public:
  Emitter() {
    families_.resize(kFamilyCount);
    for (int i = 0; i < kFamilyCount; ++i) {
      families_[i].name = kFamilies[i].name;
      families_[i].help = kFamilies[i].help;
      families_[i].type = kFamilies[i].type;
    }
  }

  void Add(Family family, const Labels& labels, double value,
           std::initializer_list<std::pair<const char*, std::string>> extra = {}) {
    ClientMetric m;
    m.label.reserve(labels.size() + extra.size());
    for (const auto& [name, label_value] : labels) m.label.push_back({name, label_value});
    for (const auto& [name, label_value] : extra) m.label.push_back({name, label_value});
    if (kFamilies[family].type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    families_[family].metric.push_back(std::move(m));
  }

  void AddIf(Family family, const Labels& labels, const std::optional<uint64_t>& value,
             double scale = 1.0) {
    if (value.has_value()) Add(family, labels, static_cast<double>(*value) * scale);
  }

  // Families with no series are left out (promtool and Prometheus accept them, but they only
  // add noise).
  std::vector<MetricFamily> Take() {
    std::vector<MetricFamily> out;
    for (MetricFamily& f : families_) {
      if (!f.metric.empty()) out.push_back(std::move(f));
    }
    return out;
  }

 private:
  std::vector<MetricFamily> families_;
};

constexpr double kNanos = 1e-9;

void EmitCgroup(Emitter& e, const Labels& labels, const CgroupSample& s,
                const std::vector<InterfaceStats>& network, const HostReader& host) {
  if (s.cpu_usage_nanos.has_value()) {
    e.Add(kCpuUsage, labels, static_cast<double>(*s.cpu_usage_nanos) * kNanos, {{"cpu", "total"}});
  }
  e.AddIf(kCpuUser, labels, s.cpu_user_nanos, kNanos);
  e.AddIf(kCpuSystem, labels, s.cpu_system_nanos, kNanos);
  e.AddIf(kCfsPeriods, labels, s.cpu_periods);
  e.AddIf(kCfsThrottledPeriods, labels, s.cpu_throttled_periods);
  e.AddIf(kCfsThrottledSeconds, labels, s.cpu_throttled_nanos, kNanos);
  e.AddIf(kMemoryUsage, labels, s.memory_usage_bytes);
  e.AddIf(kMemoryMaxUsage, labels, s.memory_max_usage_bytes);
  e.AddIf(kMemoryWorkingSet, labels, s.memory_working_set_bytes);
  e.AddIf(kMemoryRss, labels, s.memory_rss_bytes);
  e.AddIf(kMemoryCache, labels, s.memory_cache_bytes);
  e.AddIf(kMemorySwap, labels, s.memory_swap_bytes);
  e.AddIf(kMemoryMappedFile, labels, s.memory_mapped_file_bytes);
  e.AddIf(kMemoryFailcnt, labels, s.memory_failcnt);
  if (s.memory_pgfault.has_value()) {
    for (const char* scope : {"container", "hierarchy"}) {
      e.Add(kMemoryFailures, labels, static_cast<double>(*s.memory_pgfault),
            {{"failure_type", "pgfault"}, {"scope", scope}});
    }
  }
  if (s.memory_pgmajfault.has_value()) {
    for (const char* scope : {"container", "hierarchy"}) {
      e.Add(kMemoryFailures, labels, static_cast<double>(*s.memory_pgmajfault),
            {{"failure_type", "pgmajfault"}, {"scope", scope}});
    }
  }
  e.AddIf(kOomEvents, labels, s.oom_kills);
  e.AddIf(kThreads, labels, s.pids_current);
  for (const InterfaceStats& i : network) {
    auto add = [&](Family f, uint64_t v) {
      e.Add(f, labels, static_cast<double>(v), {{"interface", i.name}});
    };
    add(kNetRxBytes, i.rx_bytes);
    add(kNetRxPackets, i.rx_packets);
    add(kNetRxErrors, i.rx_errors);
    add(kNetRxDropped, i.rx_dropped);
    add(kNetTxBytes, i.tx_bytes);
    add(kNetTxPackets, i.tx_packets);
    add(kNetTxErrors, i.tx_errors);
    add(kNetTxDropped, i.tx_dropped);
  }
  for (const BlockDeviceIo& d : s.block_io) {
    std::string device = host.DeviceName(d.major, d.minor);
    if (device.empty()) device = absl::StrCat(d.major, ":", d.minor);
    auto add = [&](Family f, uint64_t v) {
      e.Add(f, labels, static_cast<double>(v), {{"device", device}});
    };
    add(kFsReadsBytes, d.read_bytes);
    add(kFsWritesBytes, d.write_bytes);
    add(kFsReads, d.reads);
    add(kFsWrites, d.writes);
  }
}

}  // namespace

std::vector<MetricFamily> BuildFamilies(const std::vector<LabeledSample>& samples,
                                        const NodeSample* node, const HostReader& host,
                                        int64_t now_nanos, int scrape_errors) {
  Emitter e;
  const double now_seconds = static_cast<double>(now_nanos) * kNanos;
  if (node != nullptr) {
    static const Labels kRoot = {{"id", "/"}};
    EmitCgroup(e, kRoot, node->totals, node->network, host);
    e.Add(kLastSeen, kRoot, now_seconds);
    e.Add(kMachineCores, {}, node->machine_cpus);
    e.Add(kMachineMemory, {}, static_cast<double>(node->machine_memory_bytes));
  }
  for (const LabeledSample& ls : samples) {
    const Labels& labels = *ls.labels;
    const ContainerSample& s = ls.sample;
    const ContainerInfo& info = s.info;
    EmitCgroup(e, labels, s.cgroup, s.network, host);
    // Limits are static: they come from the container's spec (0 means unlimited, as cAdvisor
    // reports an unlimited memory limit).
    e.Add(kSpecMemoryLimit, labels, static_cast<double>(info.memory_limit_bytes));
    if (info.cpu_quota_us > 0) {
      e.Add(kSpecCpuQuota, labels, static_cast<double>(info.cpu_quota_us));
    }
    e.Add(kSpecCpuPeriod, labels,
          static_cast<double>(info.cpu_period_us > 0 ? info.cpu_period_us : 100000));
    e.Add(kThreadsMax, labels, static_cast<double>(info.pids_limit > 0 ? info.pids_limit : 0));
    if (info.started_unix_nanos > 0) {
      e.Add(kStartTime, labels, static_cast<double>(info.started_unix_nanos) * kNanos);
    }
    e.Add(kLastSeen, labels, now_seconds);
  }
  e.Add(kScrapeError, {}, scrape_errors > 0 ? 1 : 0);
  return e.Take();
}

std::vector<MetricFamily> CadvisorCollector::Collect() const {
  std::vector<TrackedPtr> containers = stats_->registry().Running();
  int errors = 0;
  std::vector<LabeledSample> samples;
  samples.reserve(containers.size());
  for (const TrackedPtr& c : containers) {
    absl::StatusOr<ContainerSample> sample = stats_->Read(*c);
    if (sample.ok()) {
      samples.push_back({&c->labels, *std::move(sample)});
    } else if (!absl::IsNotFound(sample.status())) {
      ++errors;
      LogWarning("scrape: %s", sample.status().ToString());
    }
  }
  absl::StatusOr<NodeSample> node = stats_->ReadNode();
  if (!node.ok()) {
    ++errors;
    LogWarning("scrape: node: %s", node.status().ToString());
  }
  // `containers` keeps the label sets alive until the families are built.
  return BuildFamilies(samples, node.ok() ? &*node : nullptr, stats_->host(),
                       stats_->host().NowUnixNanos(), errors);
}

}  // namespace nodeagent::metrics
