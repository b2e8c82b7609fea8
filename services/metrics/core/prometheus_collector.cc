#include "services/metrics/core/prometheus_collector.h"

#include <charconv>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/log.h"

namespace nodeagent::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Extra = std::initializer_list<std::pair<const char*, absl::string_view>>;

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

// Collects series into prometheus-cpp MetricFamily objects (the Collectable interface).
class FamilyEmitter {
 public:
  FamilyEmitter() {
    families_.resize(kFamilyCount);
    for (int i = 0; i < kFamilyCount; ++i) {
      families_[i].name = kFamilies[i].name;
      families_[i].help = kFamilies[i].help;
      families_[i].type = kFamilies[i].type;
    }
  }

  void Add(Family family, const LabelSet& labels, double value, Extra extra = {}) {
    ClientMetric m;
    m.label.reserve(labels.pairs.size() + extra.size());
    for (const auto& [name, label_value] : labels.pairs) m.label.push_back({name, label_value});
    for (const auto& [name, label_value] : extra) {
      m.label.push_back({name, std::string(label_value)});
    }
    if (kFamilies[family].type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    families_[family].metric.push_back(std::move(m));
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

// Each family's "# HELP" and "# TYPE" lines, rendered once for the process.
const std::vector<std::string>& FamilyHeaders() {
  static const std::vector<std::string>* headers = [] {
    auto* out = new std::vector<std::string>(kFamilyCount);
    for (int i = 0; i < kFamilyCount; ++i) {
      const FamilySpec& f = kFamilies[i];
      // The help texts hold no backslash or newline: nothing to escape.
      (*out)[i] = absl::StrCat("# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ",
                               f.type == MetricType::Counter ? "counter" : "gauge", "\n");
    }
    return out;
  }();
  return *headers;
}

// Writes series straight in the text exposition format: one buffer per family (a family's
// series must be contiguous, and they are emitted container by container), joined at the end.
class TextEmitter {
 public:
  explicit TextEmitter(size_t containers) {
    // Most families have one series per container; a line is about 150 bytes.
    for (std::string& body : bodies_) body.reserve((containers + 1) * 160);
  }

  void Add(Family family, const LabelSet& labels, double value, Extra extra = {}) {
    std::string& b = bodies_[family];
    b.append(kFamilies[family].name);
    if (!labels.text.empty() || extra.size() > 0) {
      b.push_back('{');
      b.append(labels.text);
      bool first = labels.text.empty();
      for (const auto& [name, label_value] : extra) {
        if (!first) b.push_back(',');
        first = false;
        b.append(name);
        b.append("=\"");
        AppendEscapedLabelValue(label_value, &b);
        b.push_back('"');
      }
      b.push_back('}');
    }
    b.push_back(' ');
    AppendSampleValue(value, &b);
    b.push_back('\n');
  }

  void AppendTo(std::string* out) const {
    const std::vector<std::string>& headers = FamilyHeaders();
    size_t size = out->size();
    for (int i = 0; i < kFamilyCount; ++i) {
      if (!bodies_[i].empty()) size += headers[i].size() + bodies_[i].size();
    }
    out->reserve(size);
    for (int i = 0; i < kFamilyCount; ++i) {
      if (bodies_[i].empty()) continue;
      out->append(headers[i]);
      out->append(bodies_[i]);
    }
  }

 private:
  std::string bodies_[kFamilyCount];
};

template <typename Emitter>
void AddIf(Emitter& e, Family family, const LabelSet& labels, const std::optional<uint64_t>& value,
           double scale = 1.0) {
  if (value.has_value()) e.Add(family, labels, static_cast<double>(*value) * scale);
}

constexpr double kNanos = 1e-9;

template <typename Emitter>
void EmitCgroup(Emitter& e, const LabelSet& labels, const CgroupSample& s,
                const std::vector<InterfaceStats>& network, const HostReader& host) {
  if (s.cpu_usage_nanos.has_value()) {
    e.Add(kCpuUsage, labels, static_cast<double>(*s.cpu_usage_nanos) * kNanos, {{"cpu", "total"}});
  }
  AddIf(e, kCpuUser, labels, s.cpu_user_nanos, kNanos);
  AddIf(e, kCpuSystem, labels, s.cpu_system_nanos, kNanos);
  AddIf(e, kCfsPeriods, labels, s.cpu_periods);
  AddIf(e, kCfsThrottledPeriods, labels, s.cpu_throttled_periods);
  AddIf(e, kCfsThrottledSeconds, labels, s.cpu_throttled_nanos, kNanos);
  AddIf(e, kMemoryUsage, labels, s.memory_usage_bytes);
  AddIf(e, kMemoryMaxUsage, labels, s.memory_max_usage_bytes);
  AddIf(e, kMemoryWorkingSet, labels, s.memory_working_set_bytes);
  AddIf(e, kMemoryRss, labels, s.memory_rss_bytes);
  AddIf(e, kMemoryCache, labels, s.memory_cache_bytes);
  AddIf(e, kMemorySwap, labels, s.memory_swap_bytes);
  AddIf(e, kMemoryMappedFile, labels, s.memory_mapped_file_bytes);
  AddIf(e, kMemoryFailcnt, labels, s.memory_failcnt);
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
  AddIf(e, kOomEvents, labels, s.oom_kills);
  AddIf(e, kThreads, labels, s.pids_current);
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

template <typename Emitter>
void EmitAll(Emitter& e, const std::vector<LabeledSample>& samples, const NodeSample* node,
             const HostReader& host, int64_t now_nanos, int scrape_errors) {
  static const LabelSet* const kRoot =
      new LabelSet(std::vector<std::pair<std::string, std::string>>{{"id", "/"}});
  static const LabelSet* const kNone = new LabelSet();
  const double now_seconds = static_cast<double>(now_nanos) * kNanos;
  if (node != nullptr) {
    EmitCgroup(e, *kRoot, node->totals, node->network, host);
    e.Add(kLastSeen, *kRoot, now_seconds);
    e.Add(kMachineCores, *kNone, node->machine_cpus);
    e.Add(kMachineMemory, *kNone, static_cast<double>(node->machine_memory_bytes));
  }
  for (const LabeledSample& ls : samples) {
    const LabelSet& labels = *ls.labels;
    const ContainerInfo& info = *ls.info;
    EmitCgroup(e, labels, ls.usage.cgroup, ls.usage.network, host);
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
  e.Add(kScrapeError, *kNone, scrape_errors > 0 ? 1 : 0);
}

// Reads every running container and the node now. `containers` keeps the label sets and
// descriptions the samples point to alive.
struct Scrape {
  std::vector<TrackedPtr> containers;
  std::vector<LabeledSample> samples;
  absl::StatusOr<NodeSample> node;
  int errors = 0;
  int64_t now_nanos = 0;
};

Scrape ReadEverything(const StatsReader& stats) {
  Scrape s;
  s.containers = stats.registry().Running();
  s.samples.reserve(s.containers.size());
  for (const TrackedPtr& c : s.containers) {
    LabeledSample ls{&c->labels, &c->info, {}};
    absl::Status read = stats.ReadUsage(*c, &ls.usage);
    if (read.ok()) {
      s.samples.push_back(std::move(ls));
    } else if (!absl::IsNotFound(read)) {
      ++s.errors;
      LogWarning("scrape: %s", read.ToString());
    }
  }
  s.node = stats.ReadNode();
  if (!s.node.ok()) {
    ++s.errors;
    LogWarning("scrape: node: %s", s.node.status().ToString());
  }
  s.now_nanos = stats.host().NowUnixNanos();
  return s;
}

}  // namespace

void AppendSampleValue(double value, std::string* out) {
  if (std::isnan(value)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(value)) {
    out->append(value > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buf[32];
  std::to_chars_result r;
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(value));
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), value);
  }
  out->append(buf, r.ptr);
}

std::vector<MetricFamily> BuildFamilies(const std::vector<LabeledSample>& samples,
                                        const NodeSample* node, const HostReader& host,
                                        int64_t now_nanos, int scrape_errors) {
  FamilyEmitter e;
  EmitAll(e, samples, node, host, now_nanos, scrape_errors);
  return e.Take();
}

void AppendFamiliesText(const std::vector<LabeledSample>& samples, const NodeSample* node,
                        const HostReader& host, int64_t now_nanos, int scrape_errors,
                        std::string* out) {
  TextEmitter e(samples.size());
  EmitAll(e, samples, node, host, now_nanos, scrape_errors);
  e.AppendTo(out);
}

std::vector<MetricFamily> CadvisorCollector::Collect() const {
  Scrape s = ReadEverything(*stats_);
  return BuildFamilies(s.samples, s.node.ok() ? &*s.node : nullptr, stats_->host(), s.now_nanos,
                       s.errors);
}

void CadvisorCollector::AppendText(std::string* out) const {
  Scrape s = ReadEverything(*stats_);
  AppendFamiliesText(s.samples, s.node.ok() ? &*s.node : nullptr, stats_->host(), s.now_nanos,
                     s.errors, out);
}

}  // namespace nodeagent::metrics
