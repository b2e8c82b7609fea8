#include "services/network/grpc/network_service.h"

#include <string>

#include "services/common/grpc/status_convert.h"

namespace nodeagent::network {
namespace {

void ToProto(const PortMapping& in, v1::PortMapping* out) {
  out->set_host_ip(in.host_ip);
  out->set_host_port(in.host_port);
  out->set_container_port(in.container_port);
  out->set_protocol(in.protocol);
}

void ToProto(const NetworkInfo& in, v1::Network* out) {
  out->set_name(in.network.name);
  out->set_id(in.network.id);
  out->set_subnet(in.network.subnet.ToString());
  out->set_gateway(in.network.gateway.ToString());
  out->set_bridge(in.network.bridge);
  out->set_created_unix(in.network.created_unix);
  out->set_mtu(in.network.mtu);
  for (const EndpointRecord& e : in.endpoints) {
    v1::NetworkEndpoint* endpoint = out->add_endpoints();
    endpoint->set_container_id(e.container_id);
    endpoint->set_container_name(e.container_name);
    endpoint->set_hostname(e.hostname);
    endpoint->set_ip_address(e.ip.ToString());
    endpoint->set_mac_address(e.mac);
    endpoint->set_host_veth(e.host_veth);
    endpoint->set_interface_name(e.ifname);
    for (const PortMapping& p : e.ports) ToProto(p, endpoint->add_ports());
  }
}

}  // namespace

grpc::Status NetworkServiceImpl::CreateNetwork(grpc::ServerContext*,
                                               const v1::CreateNetworkRequest* request,
                                               v1::CreateNetworkResponse* response) {
  absl::StatusOr<NetworkInfo> info = manager_->CreateNetwork(request->name(), request->subnet(),
                                                             request->gateway(), request->mtu());
  if (!info.ok()) return ToGrpcStatus(info.status());
  ToProto(*info, response->mutable_network());
  return grpc::Status::OK;
}

grpc::Status NetworkServiceImpl::ListNetworks(grpc::ServerContext*, const v1::ListNetworksRequest*,
                                              v1::ListNetworksResponse* response) {
  for (const NetworkInfo& info : manager_->ListNetworks()) {
    ToProto(info, response->add_networks());
  }
  return grpc::Status::OK;
}

grpc::Status NetworkServiceImpl::GetNetwork(grpc::ServerContext*,
                                            const v1::GetNetworkRequest* request,
                                            v1::GetNetworkResponse* response) {
  absl::StatusOr<NetworkInfo> info = manager_->GetNetwork(request->name());
  if (!info.ok()) return ToGrpcStatus(info.status());
  ToProto(*info, response->mutable_network());
  return grpc::Status::OK;
}

grpc::Status NetworkServiceImpl::RemoveNetwork(grpc::ServerContext*,
                                               const v1::RemoveNetworkRequest* request,
                                               v1::RemoveNetworkResponse*) {
  return ToGrpcStatus(manager_->RemoveNetwork(request->name()));
}

grpc::Status NetworkServiceImpl::AttachContainer(grpc::ServerContext*,
                                                 const v1::AttachContainerNetworkRequest* request,
                                                 v1::AttachContainerNetworkResponse* response) {
  AttachRequest in;
  in.container_id = request->container_id();
  in.container_name = request->container_name();
  in.hostname = request->hostname();
  in.network = request->attachment().mode();
  in.connect = request->connect();
  for (const v1::PortMapping& p : request->attachment().ports()) {
    in.ports.push_back({p.host_ip(), p.host_port(), p.container_port(),
                        p.protocol().empty() ? "tcp" : p.protocol()});
  }
  absl::StatusOr<AttachResult> result = manager_->Attach(in);
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_ip_address(result->ip_address);
  response->set_gateway(result->gateway);
  response->set_mac_address(result->mac_address);
  response->set_hosts_path(result->hosts_path);
  response->set_resolv_conf_path(result->resolv_conf_path);
  response->set_netns_path(result->netns_path);
  response->set_network(result->network);
  response->set_prefix_length(result->prefix_length);
  response->set_host_veth(result->host_veth);
  response->set_interface_name(result->interface_name);
  return grpc::Status::OK;
}

grpc::Status NetworkServiceImpl::DetachContainer(grpc::ServerContext*,
                                                 const v1::DetachContainerNetworkRequest* request,
                                                 v1::DetachContainerNetworkResponse*) {
  return ToGrpcStatus(manager_->Detach(request->container_id(), request->network()));
}

}  // namespace nodeagent::network
