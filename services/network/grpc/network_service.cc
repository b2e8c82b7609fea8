#include "services/network/grpc/network_service.h"

#include <string>

namespace nodeagent::network {
namespace {

grpc::Status NotYet(const std::string& rpc) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      rpc +
                          ": not implemented yet (networks are issue 5); containers have "
                          "loopback only for now");
}

}  // namespace

grpc::Status NetworkServiceImpl::CreateNetwork(grpc::ServerContext*,
                                               const v1::CreateNetworkRequest*,
                                               v1::CreateNetworkResponse*) {
  return NotYet("CreateNetwork");
}
grpc::Status NetworkServiceImpl::ListNetworks(grpc::ServerContext*, const v1::ListNetworksRequest*,
                                              v1::ListNetworksResponse*) {
  return NotYet("ListNetworks");
}
grpc::Status NetworkServiceImpl::GetNetwork(grpc::ServerContext*, const v1::GetNetworkRequest*,
                                            v1::GetNetworkResponse*) {
  return NotYet("GetNetwork");
}
grpc::Status NetworkServiceImpl::RemoveNetwork(grpc::ServerContext*,
                                               const v1::RemoveNetworkRequest*,
                                               v1::RemoveNetworkResponse*) {
  return NotYet("RemoveNetwork");
}
grpc::Status NetworkServiceImpl::AttachContainer(grpc::ServerContext*,
                                                 const v1::AttachContainerNetworkRequest*,
                                                 v1::AttachContainerNetworkResponse*) {
  return NotYet("AttachContainer");
}
grpc::Status NetworkServiceImpl::DetachContainer(grpc::ServerContext*,
                                                 const v1::DetachContainerNetworkRequest*,
                                                 v1::DetachContainerNetworkResponse*) {
  return NotYet("DetachContainer");
}

}  // namespace nodeagent::network
