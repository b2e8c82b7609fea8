#include "services/runtime/grpc/network_client.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/grpc/service_host.h"
#include "services/common/grpc/status_convert.h"

namespace nodeagent::runtime {
namespace {

// Attach creates a bridge on first use and may wait for the service's lock; detach is quick.
constexpr auto kAttachDeadline = std::chrono::seconds(30);
constexpr auto kDetachDeadline = std::chrono::seconds(30);

absl::Status NetworkServiceError(const grpc::Status& status, const std::string& socket) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat("network service at \"", socket,
                                               "\" is unavailable: ", status.error_message()));
  }
  return FromGrpcStatus(status);
}

}  // namespace

NetworkServiceAttacher::NetworkServiceAttacher(const std::string& network_socket)
    : socket_(network_socket), stub_(v1::NetworkService::NewStub(DialUnixSocket(network_socket))) {}

absl::StatusOr<NetworkEndpoint> NetworkServiceAttacher::Attach(
    const NetworkAttachRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kAttachDeadline);
  v1::AttachContainerNetworkRequest message;
  message.set_container_id(request.container_id);
  message.set_container_name(request.container_name);
  message.set_hostname(request.hostname);
  message.mutable_attachment()->set_mode(request.network);
  for (const PublishedPort& port : request.ports) {
    v1::PortMapping* p = message.mutable_attachment()->add_ports();
    p->set_host_ip(port.host_ip);
    p->set_host_port(port.host_port);
    p->set_container_port(port.container_port);
    p->set_protocol(port.protocol);
  }
  v1::AttachContainerNetworkResponse response;
  grpc::Status status = stub_->AttachContainer(&context, message, &response);
  if (!status.ok()) return NetworkServiceError(status, socket_);

  NetworkEndpoint endpoint;
  endpoint.network = response.network();
  endpoint.ip_address = response.ip_address();
  endpoint.prefix_length = response.prefix_length();
  endpoint.gateway = response.gateway();
  endpoint.mac_address = response.mac_address();
  endpoint.netns_path = response.netns_path();
  endpoint.hosts_path = response.hosts_path();
  endpoint.resolv_conf_path = response.resolv_conf_path();
  return endpoint;
}

absl::Status NetworkServiceAttacher::Detach(const std::string& container_id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kDetachDeadline);
  v1::DetachContainerNetworkRequest request;
  request.set_container_id(container_id);
  v1::DetachContainerNetworkResponse response;
  grpc::Status status = stub_->DetachContainer(&context, request, &response);
  if (!status.ok()) return NetworkServiceError(status, socket_);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> NetworkServiceAttacher::NetworksOf(
    const std::string& container_id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kDetachDeadline);
  v1::ListNetworksRequest request;
  v1::ListNetworksResponse response;
  grpc::Status status = stub_->ListNetworks(&context, request, &response);
  if (!status.ok()) return NetworkServiceError(status, socket_);
  std::vector<std::pair<std::string, std::string>> found;  // (interface, network)
  for (const v1::Network& network : response.networks()) {
    for (const v1::NetworkEndpoint& endpoint : network.endpoints()) {
      if (endpoint.container_id() == container_id) {
        found.emplace_back(endpoint.interface_name(), network.name());
      }
    }
  }
  // "eth2" before "eth10": by length, then by name.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a < b;
  });
  std::vector<std::string> names;
  for (const auto& [interface, network] : found) names.push_back(network);
  return names;
}

}  // namespace nodeagent::runtime
