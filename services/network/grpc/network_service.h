#pragma once

// NetworkService: the gRPC adapter over core::NetworkManager (proto <-> core types,
// absl::Status -> grpc::Status). No logic of its own.

#include "nodeagent/v1/network.grpc.pb.h"
#include "services/network/core/network_manager.h"

namespace nodeagent::network {

class NetworkServiceImpl final : public v1::NetworkService::Service {
 public:
  // `manager` is not owned and must outlive the service.
  explicit NetworkServiceImpl(NetworkManager* manager) : manager_(manager) {}

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

 private:
  NetworkManager* manager_;
};

}  // namespace nodeagent::network
