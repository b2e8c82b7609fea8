#pragma once

// What the runtime needs from the network service: a container's endpoint on a bridge network
// (a pinned netns with eth0, an address, published ports and /etc/hosts + resolv.conf files),
// made before the container starts and removed when it stops. grpc/network_client.cc
// implements it over the network service's socket.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/runtime/core/container.h"

namespace nodeagent::runtime {

struct NetworkAttachRequest {
  std::string container_id;
  std::string container_name;
  std::string hostname;
  std::string network;  // "bridge" (the default network) or a network name.
  std::vector<PublishedPort> ports;
};

class NetworkAttacher {
 public:
  virtual ~NetworkAttacher() = default;
  // Nothing is left attached on error.
  virtual absl::StatusOr<NetworkEndpoint> Attach(const NetworkAttachRequest& request) = 0;
  // Removes every endpoint of the container; detaching a container that has none succeeds.
  virtual absl::Status Detach(const std::string& container_id) = 0;
  // Names of the networks the container has an endpoint on, in interface order (eth0 first):
  // its first network and those `nodectl network connect` added.
  virtual absl::StatusOr<std::vector<std::string>> NetworksOf(const std::string& container_id) = 0;
};

}  // namespace nodeagent::runtime
