#include "services/network/core/render.h"

#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace nodeagent::network {
namespace {

std::string Names(const EndpointRecord& e) {
  std::vector<std::string> names;
  if (!e.container_name.empty()) names.push_back(e.container_name);
  if (!e.hostname.empty() && e.hostname != e.container_name) names.push_back(e.hostname);
  if (e.container_id.size() >= 12) names.push_back(e.container_id.substr(0, 12));
  if (names.empty()) names.push_back(e.container_id);
  return absl::StrJoin(names, " ");
}

}  // namespace

std::string RenderHosts(const NetworkState& state, const std::string& container_id) {
  std::string out =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "ff00::0\tip6-mcastprefix\n"
      "ff02::1\tip6-allnodes\n"
      "ff02::2\tip6-allrouters\n";
  std::vector<const EndpointRecord*> own = state.EndpointsOfContainer(container_id);
  for (const EndpointRecord* self : own) {
    absl::StrAppend(&out, self->ip.ToString(), "\t", Names(*self), "\n");
  }
  for (const EndpointRecord* self : own) {
    for (const EndpointRecord* other : state.EndpointsOf(self->network)) {
      if (other->container_id == container_id) continue;
      absl::StrAppend(&out, other->ip.ToString(), "\t", Names(*other), "\n");
    }
  }
  return out;
}

std::string RenderHosts(const NetworkState& state, const EndpointRecord& self) {
  return RenderHosts(state, self.container_id);
}

std::string RenderResolvConf(absl::string_view host_resolv_conf) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(host_resolv_conf, '\n')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || trimmed[0] == '#' || trimmed[0] == ';') continue;
    std::vector<absl::string_view> words =
        absl::StrSplit(trimmed, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words[0] == "nameserver") {
      if (words.size() < 2) continue;
      // Loopback resolvers (127.0.0.0/8, ::1) are the host's own: unreachable from here.
      if (absl::StartsWith(words[1], "127.") || words[1] == "::1") continue;
    } else if (words[0] != "search" && words[0] != "domain" && words[0] != "options") {
      continue;
    }
    absl::StrAppend(&out, absl::StrJoin(words, " "), "\n");
  }
  return out;
}

std::string RenderRuleset(const NetworkState& state, const std::string& table,
                          const std::string& bridge_prefix) {
  // `add` then `delete` then the full table: one transaction that replaces whatever the table
  // held (or creates it), so the kernel never sees a half-updated ruleset.
  std::string out = absl::StrCat("add table ip ", table, "\ndelete table ip ", table, "\n");
  if (state.networks.empty()) return out;

  std::string dnat_pre;
  std::string dnat_out;
  for (const EndpointRecord& e : state.endpoints) {
    for (const PortMapping& p : e.ports) {
      std::string match =
          p.host_ip.empty() ? "fib daddr type local" : absl::StrCat("ip daddr ", p.host_ip);
      std::string rule = absl::StrCat("    ", match, " ", p.protocol, " dport ", p.host_port,
                                      " dnat to ", e.ip.ToString(), ":", p.container_port,
                                      " comment \"", e.container_id, "\"\n");
      // Packets from other hosts and from containers arrive through prerouting; the host's
      // own (loopback included) through output.
      if (!absl::StartsWith(p.host_ip, "127.")) absl::StrAppend(&dnat_pre, rule);
      absl::StrAppend(&dnat_out, rule);
    }
  }
  std::string post;
  std::string forward;
  for (const NetworkRecord& n : state.networks) {
    // Outbound NAT: the subnet leaves through the host's address.
    absl::StrAppend(&post, "    ip saddr ", n.subnet.ToString(), " oifname != \"", n.bridge,
                    "\" masquerade comment \"", n.name, "\"\n");
    // Published on 127.0.0.1: the DNATed packet keeps its loopback source, which the container
    // could not answer; give it the gateway's address instead.
    absl::StrAppend(&post, "    oifname \"", n.bridge,
                    "\" ip saddr 127.0.0.0/8 masquerade comment \"", n.name, "\"\n");
    // Networks are isolated from each other: nothing is routed from one bridge to another.
    absl::StrAppend(&forward, "    iifname \"", n.bridge, "\" oifname \"", bridge_prefix,
                    "*\" oifname != \"", n.bridge, "\" drop comment \"", n.name, "\"\n");
  }
  absl::StrAppend(&out, "table ip ", table, " {\n");
  absl::StrAppend(&out, "  chain prerouting {\n    type nat hook prerouting priority dstnat;\n",
                  dnat_pre, "  }\n");
  absl::StrAppend(&out, "  chain output {\n    type nat hook output priority -100;\n", dnat_out,
                  "  }\n");
  absl::StrAppend(&out, "  chain postrouting {\n    type nat hook postrouting priority srcnat;\n",
                  post, "  }\n");
  absl::StrAppend(&out, "  chain forward {\n    type filter hook forward priority filter;\n",
                  forward, "  }\n");
  absl::StrAppend(&out, "}\n");
  return out;
}

}  // namespace nodeagent::network
