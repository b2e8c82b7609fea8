#pragma once

// Text the network service generates: a container's /etc/hosts and /etc/resolv.conf, and the
// nftables ruleset of this node (NAT for published ports, masquerade, isolation of networks).

#include <string>

#include "absl/strings/string_view.h"
#include "services/network/core/state.h"

namespace nodeagent::network {

// /etc/hosts of container `container_id`: localhost, itself (name, hostname and short id) at
// each of its addresses, and every other container on any of its networks at its address on
// that network.
std::string RenderHosts(const NetworkState& state, const std::string& container_id);
// The same for the container of `self`.
std::string RenderHosts(const NetworkState& state, const EndpointRecord& self);

// /etc/resolv.conf for a container from the host's: nameservers on loopback (a local stub
// resolver such as systemd-resolved's 127.0.0.53) cannot be reached from another network
// namespace and are left out; search and options lines are kept.
std::string RenderResolvConf(absl::string_view host_resolv_conf);

// The complete nftables script that replaces table `ip <table>` with the rules `state` needs,
// in one atomic transaction. Empty networks still get masquerade and isolation rules; with no
// networks at all the table is deleted.
std::string RenderRuleset(const NetworkState& state, const std::string& table,
                          const std::string& bridge_prefix);

}  // namespace nodeagent::network
