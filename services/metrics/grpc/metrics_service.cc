#include "services/metrics/grpc/metrics_service.h"

#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/common/grpc/status_convert.h"

namespace nodeagent::metrics {
namespace {

template <typename Response>
absl::Status Fill(const StatsReader& stats, const std::vector<std::string>& refs,
                  bool tolerate_missing, Response* response) {
  absl::StatusOr<std::vector<TrackedPtr>> containers = stats.registry().Find(refs);
  if (!containers.ok()) {
    if (!tolerate_missing) return containers.status();
    containers = std::vector<TrackedPtr>();
  }
  for (const TrackedPtr& c : *containers) {
    absl::StatusOr<ContainerSample> sample = stats.Read(*c);
    if (absl::IsNotFound(sample.status())) {
      // Gone between the lookup and the read: as if it had not been running.
      if (!refs.empty() && !tolerate_missing) {
        return absl::FailedPreconditionError(
            absl::StrCat("container \"", c->info.name, "\": not running"));
      }
      continue;
    }
    if (!sample.ok()) {
      return absl::Status(sample.status().code(),
                          absl::StrCat("read stats of container \"", c->info.name,
                                       "\": ", sample.status().message()));
    }
    ContainerStatsToProto(*sample, response->add_stats());
  }
  absl::StatusOr<NodeSample> node = stats.ReadNode();
  if (node.ok()) {
    response->set_machine_memory_bytes(node->machine_memory_bytes);
    response->set_machine_cpus(node->machine_cpus);
  }
  return absl::OkStatus();
}

}  // namespace

void ContainerStatsToProto(const ContainerSample& s, v1::ContainerStats* out) {
  const ContainerInfo& info = s.info;
  const CgroupSample& c = s.cgroup;
  out->set_id(info.id);
  out->set_name(info.name);
  out->set_image(info.image);
  out->set_timestamp_unix_nanos(s.timestamp_unix_nanos);
  out->set_started_unix_nanos(info.started_unix_nanos);
  out->set_cpu_usage_nanos(c.cpu_usage_nanos.value_or(0));
  out->set_cpu_user_nanos(c.cpu_user_nanos.value_or(0));
  out->set_cpu_system_nanos(c.cpu_system_nanos.value_or(0));
  out->set_cpu_periods(c.cpu_periods.value_or(0));
  out->set_cpu_throttled_periods(c.cpu_throttled_periods.value_or(0));
  out->set_cpu_throttled_nanos(c.cpu_throttled_nanos.value_or(0));
  if (info.cpu_quota_us > 0) {
    int64_t period = info.cpu_period_us > 0 ? info.cpu_period_us : 100000;
    out->set_cpu_limit_cores(static_cast<double>(info.cpu_quota_us) / static_cast<double>(period));
  }
  out->set_memory_usage_bytes(c.memory_usage_bytes.value_or(0));
  out->set_memory_working_set_bytes(c.memory_working_set_bytes.value_or(0));
  out->set_memory_limit_bytes(info.memory_limit_bytes > 0 ? info.memory_limit_bytes : 0);
  out->set_memory_rss_bytes(c.memory_rss_bytes.value_or(0));
  out->set_memory_cache_bytes(c.memory_cache_bytes.value_or(0));
  out->set_memory_failcnt(c.memory_failcnt.value_or(0));
  out->set_oom_kills(c.oom_kills.value_or(0));
  out->set_pids(c.pids_current.value_or(0));
  out->set_pids_limit(info.pids_limit > 0 ? info.pids_limit : 0);
  for (const InterfaceStats& i : s.network) {
    out->set_network_rx_bytes(out->network_rx_bytes() + i.rx_bytes);
    out->set_network_tx_bytes(out->network_tx_bytes() + i.tx_bytes);
    out->set_network_rx_packets(out->network_rx_packets() + i.rx_packets);
    out->set_network_tx_packets(out->network_tx_packets() + i.tx_packets);
  }
  for (const BlockDeviceIo& d : c.block_io) {
    out->set_block_read_bytes(out->block_read_bytes() + d.read_bytes);
    out->set_block_write_bytes(out->block_write_bytes() + d.write_bytes);
  }
}

grpc::Status MetricsServiceImpl::GetStats(grpc::ServerContext*, const v1::GetStatsRequest* request,
                                          v1::GetStatsResponse* response) {
  std::vector<std::string> refs(request->ids().begin(), request->ids().end());
  return ToGrpcStatus(Fill(*stats_, refs, /*tolerate_missing=*/false, response));
}

grpc::Status MetricsServiceImpl::StreamStats(grpc::ServerContext* context,
                                             const v1::StreamStatsRequest* request,
                                             grpc::ServerWriter<v1::StreamStatsResponse>* writer) {
  std::vector<std::string> refs(request->ids().begin(), request->ids().end());
  uint32_t interval_ms = request->interval_ms() == 0 ? 1000 : request->interval_ms();
  if (interval_ms < 100) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("interval_ms ", interval_ms, ": below 100"));
  }
  // The containers asked for must exist when the stream starts; later, one that stops simply
  // drops out of the samples (as docker stats shows it).
  if (!refs.empty()) {
    absl::StatusOr<std::vector<TrackedPtr>> found = stats_->registry().Find(refs);
    if (!found.ok()) return ToGrpcStatus(found.status());
  }
  absl::Time next = absl::Now();
  while (!context->IsCancelled()) {
    v1::StreamStatsResponse response;
    absl::Status filled = Fill(*stats_, refs, /*tolerate_missing=*/true, &response);
    if (!filled.ok()) return ToGrpcStatus(filled);
    if (!writer->Write(response)) break;
    next += absl::Milliseconds(interval_ms);
    // Sleep in short steps so a cancelled client frees the thread soon.
    while (!context->IsCancelled() && absl::Now() < next) {
      absl::SleepFor(std::min(next - absl::Now(), absl::Milliseconds(100)));
    }
  }
  return grpc::Status::OK;
}

}  // namespace nodeagent::metrics
