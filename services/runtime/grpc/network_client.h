#pragma once

// NetworkAttacher over the network service's gRPC API (runtime -> network in DESIGN.md).

#include <memory>
#include <string>

#include "nodeagent/v1/network.grpc.pb.h"
#include "services/runtime/core/network_attacher.h"

namespace nodeagent::runtime {

class NetworkServiceAttacher : public NetworkAttacher {
 public:
  explicit NetworkServiceAttacher(const std::string& network_socket);

  absl::StatusOr<NetworkEndpoint> Attach(const NetworkAttachRequest& request) override;
  absl::Status Detach(const std::string& container_id) override;
  absl::StatusOr<std::vector<std::string>> NetworksOf(const std::string& container_id) override;

 private:
  std::string socket_;
  std::unique_ptr<v1::NetworkService::Stub> stub_;
};

}  // namespace nodeagent::runtime
