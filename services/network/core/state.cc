#include "services/network/core/state.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/status_macros.h"

namespace nodeagent::network {

absl::Status ValidatePortMapping(const PortMapping& port) {
  if (port.host_port == 0 || port.host_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", PortMappingString(port), ": host port must be 1..65535"));
  }
  if (port.container_port == 0 || port.container_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", PortMappingString(port), ": container port must be 1..65535"));
  }
  if (port.protocol != "tcp" && port.protocol != "udp") {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", PortMappingString(port), ": protocol must be tcp or udp"));
  }
  if (!port.host_ip.empty()) {
    absl::StatusOr<Ipv4> ip = Ipv4::Parse(port.host_ip);
    if (!ip.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("port ", PortMappingString(port), ": host ", ip.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PortMapping> ParsePortSpec(absl::string_view spec) {
  std::string what = absl::StrCat("port \"", spec, "\"");
  PortMapping port;
  absl::string_view rest = spec;
  if (size_t slash = rest.rfind('/'); slash != absl::string_view::npos) {
    port.protocol = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, ':');
  if (parts.size() == 3) {
    port.host_ip = std::string(parts[0]);
    parts.erase(parts.begin());
  }
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]"));
  }
  auto parse_port = [&](absl::string_view text, uint32_t* out) {
    return !text.empty() && text.find_first_not_of("0123456789") == absl::string_view::npos &&
           text.size() <= 5 && absl::SimpleAtoi(text, out);
  };
  if (!parse_port(parts[0], &port.host_port)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad host port \"", parts[0], "\""));
  }
  if (!parse_port(parts[1], &port.container_port)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad container port \"", parts[1], "\""));
  }
  absl::Status valid = ValidatePortMapping(port);
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", valid.message()));
  return port;
}

std::string PortMappingString(const PortMapping& port) {
  return absl::StrCat(port.host_ip.empty() ? "" : port.host_ip + ":", port.host_port, "->",
                      port.container_port, "/", port.protocol);
}

NetworkRecord* NetworkState::FindNetwork(const std::string& name) {
  for (NetworkRecord& n : networks) {
    if (n.name == name || n.id == name) return &n;
  }
  return nullptr;
}

ContainerRecord* NetworkState::FindContainer(const std::string& container_id) {
  for (ContainerRecord& c : containers) {
    if (c.container_id == container_id) return &c;
  }
  return nullptr;
}

EndpointRecord* NetworkState::FindEndpoint(const std::string& container_id,
                                           const std::string& network) {
  for (EndpointRecord& e : endpoints) {
    if (e.container_id == container_id && e.network == network) return &e;
  }
  return nullptr;
}

std::vector<const EndpointRecord*> NetworkState::EndpointsOfContainer(
    const std::string& container_id) const {
  std::vector<const EndpointRecord*> out;
  for (const EndpointRecord& e : endpoints) {
    if (e.container_id == container_id) out.push_back(&e);
  }
  return out;
}

std::string NextInterfaceName(const NetworkState& state, const std::string& container_id) {
  std::set<std::string> used;
  for (const EndpointRecord* e : state.EndpointsOfContainer(container_id)) used.insert(e->ifname);
  for (int i = 0;; ++i) {
    std::string name = absl::StrCat("eth", i);
    if (used.count(name) == 0) return name;
  }
}

std::vector<const EndpointRecord*> NetworkState::EndpointsOf(const std::string& network) const {
  std::vector<const EndpointRecord*> out;
  for (const EndpointRecord& e : endpoints) {
    if (e.network == network) out.push_back(&e);
  }
  return out;
}

std::string SerializeState(const NetworkState& state, bool attachments) {
  nlohmann::json j;
  j["version"] = 1;
  j["networks"] = nlohmann::json::array();
  for (const NetworkRecord& n : state.networks) {
    j["networks"].push_back({{"name", n.name},
                             {"id", n.id},
                             {"subnet", n.subnet.ToString()},
                             {"gateway", n.gateway.ToString()},
                             {"bridge", n.bridge},
                             {"created_unix", n.created_unix},
                             {"mtu", n.mtu},
                             {"last_allocated", n.last_allocated.ToString()}});
  }
  if (!attachments) return j.dump(2) + "\n";
  j["containers"] = nlohmann::json::array();
  for (const ContainerRecord& c : state.containers) {
    j["containers"].push_back({{"container_id", c.container_id},
                               {"container_name", c.container_name},
                               {"hostname", c.hostname}});
  }
  j["endpoints"] = nlohmann::json::array();
  for (const EndpointRecord& e : state.endpoints) {
    nlohmann::json ports = nlohmann::json::array();
    for (const PortMapping& p : e.ports) {
      ports.push_back({{"host_ip", p.host_ip},
                       {"host_port", p.host_port},
                       {"container_port", p.container_port},
                       {"protocol", p.protocol}});
    }
    j["endpoints"].push_back({{"container_id", e.container_id},
                              {"container_name", e.container_name},
                              {"hostname", e.hostname},
                              {"network", e.network},
                              {"ip", e.ip.ToString()},
                              {"mac", e.mac},
                              {"host_veth", e.host_veth},
                              {"ifname", e.ifname},
                              {"ports", ports},
                              {"complete", e.complete}});
  }
  return j.dump(2) + "\n";
}

absl::StatusOr<NetworkState> ParseState(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError("state: not a JSON object");
  }
  NetworkState state;
  try {
    for (const nlohmann::json& n : j.value("networks", nlohmann::json::array())) {
      NetworkRecord r;
      r.name = n.at("name").get<std::string>();
      r.id = n.at("id").get<std::string>();
      NA_ASSIGN_OR_RETURN(r.subnet, Subnet::Parse(n.at("subnet").get<std::string>()));
      NA_ASSIGN_OR_RETURN(r.gateway, Ipv4::Parse(n.at("gateway").get<std::string>()));
      r.bridge = n.at("bridge").get<std::string>();
      r.created_unix = n.value("created_unix", int64_t{0});
      r.mtu = n.value("mtu", 0);
      NA_ASSIGN_OR_RETURN(r.last_allocated,
                          Ipv4::Parse(n.value("last_allocated", r.gateway.ToString())));
      state.networks.push_back(std::move(r));
    }
    for (const nlohmann::json& e : j.value("endpoints", nlohmann::json::array())) {
      EndpointRecord r;
      r.container_id = e.at("container_id").get<std::string>();
      r.container_name = e.value("container_name", "");
      r.hostname = e.value("hostname", "");
      r.network = e.at("network").get<std::string>();
      NA_ASSIGN_OR_RETURN(r.ip, Ipv4::Parse(e.at("ip").get<std::string>()));
      r.mac = e.value("mac", "");
      r.host_veth = e.at("host_veth").get<std::string>();
      r.ifname = e.value("ifname", "eth0");
      r.complete = e.value("complete", false);
      for (const nlohmann::json& p : e.value("ports", nlohmann::json::array())) {
        r.ports.push_back({p.value("host_ip", ""), p.value("host_port", 0u),
                           p.value("container_port", 0u), p.value("protocol", "tcp")});
      }
      state.endpoints.push_back(std::move(r));
    }
    for (const nlohmann::json& c : j.value("containers", nlohmann::json::array())) {
      ContainerRecord r;
      r.container_id = c.at("container_id").get<std::string>();
      r.container_name = c.value("container_name", "");
      r.hostname = c.value("hostname", "");
      state.containers.push_back(std::move(r));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("state: ", e.what()));
  }
  // State written before containers were recorded on their own: one per endpoint's container.
  for (const EndpointRecord& e : state.endpoints) {
    if (state.FindContainer(e.container_id) == nullptr) {
      state.containers.push_back({e.container_id, e.container_name, e.hostname});
    }
  }
  return state;
}

absl::StatusOr<Ipv4> AllocateAddress(const NetworkRecord& network,
                                     const std::vector<Ipv4>& in_use) {
  std::set<uint32_t> used;
  for (Ipv4 ip : in_use) used.insert(ip.value);
  used.insert(network.gateway.value);
  uint32_t first = network.subnet.FirstHost().value;
  uint32_t last = network.subnet.LastHost().value;
  uint64_t count = uint64_t{last} - first + 1;
  uint32_t start = network.last_allocated.value;
  if (start < first || start > last) start = last;  // The next one is then `first`.
  for (uint64_t i = 1; i <= count; ++i) {
    uint32_t candidate = static_cast<uint32_t>(first + (uint64_t{start} - first + i) % count);
    if (used.count(candidate) == 0) return Ipv4{candidate};
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "network \"", network.name, "\": no free address left in ", network.subnet.ToString()));
}

}  // namespace nodeagent::network
