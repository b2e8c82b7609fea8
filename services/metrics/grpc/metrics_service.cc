#include "services/metrics/grpc/metrics_service.h"

namespace nodeagent::metrics {

grpc::Status MetricsServiceImpl::GetStats(grpc::ServerContext*, const v1::GetStatsRequest*,
                                          v1::GetStatsResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "GetStats: not implemented yet (container stats are issue 6)");
}

grpc::Status MetricsServiceImpl::StreamStats(grpc::ServerContext*, const v1::StreamStatsRequest*,
                                             grpc::ServerWriter<v1::StreamStatsResponse>*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "StreamStats: not implemented yet (container stats are issue 6)");
}

}  // namespace nodeagent::metrics
