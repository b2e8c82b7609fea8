#pragma once

// MetricsService: per-container stats arrive with the metrics issue (6); until then the RPCs
// answer UNIMPLEMENTED.

#include "nodeagent/v1/metrics.grpc.pb.h"

namespace nodeagent::metrics {

class MetricsServiceImpl final : public v1::MetricsService::Service {
 public:
  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override;
  grpc::Status StreamStats(grpc::ServerContext* context, const v1::StreamStatsRequest* request,
                           grpc::ServerWriter<v1::StreamStatsResponse>* writer) override;
};

}  // namespace nodeagent::metrics
