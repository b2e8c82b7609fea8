#pragma once

// What the network service remembers between restarts: its networks and the containers
// attached to them (their address leases, published ports and kernel object names), as JSON
// written atomically after every change; the kernel is reconciled against it on start.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/network/core/ip.h"

namespace nodeagent::network {

struct PortMapping {
  std::string host_ip;  // Empty: every local address of the host.
  uint32_t host_port = 0;
  uint32_t container_port = 0;
  std::string protocol = "tcp";  // "tcp" or "udp".

  friend bool operator==(const PortMapping& a, const PortMapping& b) {
    return a.host_ip == b.host_ip && a.host_port == b.host_port &&
           a.container_port == b.container_port && a.protocol == b.protocol;
  }
};

// Checks a mapping's fields: ports 1..65535, protocol tcp|udp, host_ip empty or IPv4.
absl::Status ValidatePortMapping(const PortMapping& port);
// Parses a -p flag: "HOSTPORT:CTRPORT", "HOSTIP:HOSTPORT:CTRPORT", each with an optional
// "/tcp" or "/udp" (tcp by default).
absl::StatusOr<PortMapping> ParsePortSpec(absl::string_view spec);
// "127.0.0.1:8080->80/tcp", "8080->80/udp".
std::string PortMappingString(const PortMapping& port);

struct NetworkRecord {
  std::string name;
  std::string id;  // 64 hex digits.
  Subnet subnet;
  Ipv4 gateway;
  std::string bridge;  // Host bridge device.
  int64_t created_unix = 0;
  int mtu = 0;  // 0: the kernel's default (1500).
  // The last address handed out: the next lease starts after it, so a freed address is the
  // last to be handed out again (as CNI's host-local does).
  Ipv4 last_allocated;
};

// A container this service made a network namespace for (pinned at <run-dir>/netns/<id>). It
// lives from the container's first attach until a detach of all its networks; it may have no
// endpoint for a while (disconnected from every network, loopback only).
struct ContainerRecord {
  std::string container_id;
  std::string container_name;
  std::string hostname;
};

// One network interface of a container: a lease on one network and a veth pair. A container
// has one endpoint per network it is on (eth0, eth1, ... in the order they were attached).
struct EndpointRecord {
  std::string container_id;
  std::string container_name;
  std::string hostname;
  std::string network;  // NetworkRecord::name.
  Ipv4 ip;
  std::string mac;
  std::string host_veth;        // Host end of the veth pair (on the bridge).
  std::string ifname = "eth0";  // The container's end.
  std::vector<PortMapping> ports;
  // False while the kernel objects are being made: an endpoint found incomplete on start
  // belongs to an attach that was cut short and is rolled back.
  bool complete = false;
};

struct NetworkState {
  std::vector<NetworkRecord> networks;
  std::vector<ContainerRecord> containers;
  // In attach order: a container's first endpoint carries its default route.
  std::vector<EndpointRecord> endpoints;

  NetworkRecord* FindNetwork(const std::string& name);
  ContainerRecord* FindContainer(const std::string& container_id);
  // The container's endpoint on `network` (a name).
  EndpointRecord* FindEndpoint(const std::string& container_id, const std::string& network);
  std::vector<const EndpointRecord*> EndpointsOf(const std::string& network) const;
  std::vector<const EndpointRecord*> EndpointsOfContainer(const std::string& container_id) const;
};

// The first "ethN" no endpoint of the container uses.
std::string NextInterfaceName(const NetworkState& state, const std::string& container_id);

// JSON of the state; without `attachments`, the networks alone.
std::string SerializeState(const NetworkState& state, bool attachments = true);
absl::StatusOr<NetworkState> ParseState(const std::string& json);

// The next free address of `network` after its last allocation, wrapping around; skips the
// gateway and every address in `in_use`. RESOURCE_EXHAUSTED when the subnet is full.
absl::StatusOr<Ipv4> AllocateAddress(const NetworkRecord& network, const std::vector<Ipv4>& in_use);

}  // namespace nodeagent::network
