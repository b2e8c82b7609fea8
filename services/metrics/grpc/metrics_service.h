#pragma once

// MetricsService: the gRPC adapter over core's StatsReader. One-shot (GetStats) and streaming
// (StreamStats) per-container samples, read at the time of the call.

#include "nodeagent/v1/metrics.grpc.pb.h"
#include "services/metrics/core/stats_reader.h"

namespace nodeagent::metrics {

class MetricsServiceImpl final : public v1::MetricsService::Service {
 public:
  explicit MetricsServiceImpl(const StatsReader* stats) : stats_(stats) {}

  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override;
  grpc::Status StreamStats(grpc::ServerContext* context, const v1::StreamStatsRequest* request,
                           grpc::ServerWriter<v1::StreamStatsResponse>* writer) override;

 private:
  const StatsReader* const stats_;
};

// The proto form of one sample.
void ContainerStatsToProto(const ContainerSample& sample, v1::ContainerStats* out);

}  // namespace nodeagent::metrics
