#pragma once

// NetworkService: bridges, veth, IPAM and port publishing arrive with the network issue (5).
// Until then every RPC answers UNIMPLEMENTED and containers get loopback only.

#include "nodeagent/v1/network.grpc.pb.h"

namespace nodeagent::network {

class NetworkServiceImpl final : public v1::NetworkService::Service {
 public:
  grpc::Status CreateNetwork(grpc::ServerContext* context, const v1::CreateNetworkRequest* request,
                             v1::CreateNetworkResponse* response) override;
  grpc::Status ListNetworks(grpc::ServerContext* context, const v1::ListNetworksRequest* request,
                            v1::ListNetworksResponse* response) override;
  grpc::Status GetNetwork(grpc::ServerContext* context, const v1::GetNetworkRequest* request,
                          v1::GetNetworkResponse* response) override;
  grpc::Status RemoveNetwork(grpc::ServerContext* context, const v1::RemoveNetworkRequest* request,
                             v1::RemoveNetworkResponse* response) override;
  grpc::Status AttachContainer(grpc::ServerContext* context,
                               const v1::AttachContainerNetworkRequest* request,
                               v1::AttachContainerNetworkResponse* response) override;
  grpc::Status DetachContainer(grpc::ServerContext* context,
                               const v1::DetachContainerNetworkRequest* request,
                               v1::DetachContainerNetworkResponse* response) override;
};

}  // namespace nodeagent::network
