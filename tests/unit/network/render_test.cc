#include "services/network/core/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nodeagent::network {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

NetworkState TwoNetworks() {
  NetworkState state;
  for (const char* name : {"a", "b"}) {
    NetworkRecord n;
    n.name = name;
    n.id = std::string(64, name[0]);
    n.subnet = *Subnet::Parse(std::string(name) == "a" ? "10.213.1.0/24" : "10.213.2.0/24");
    n.gateway = n.subnet.FirstHost();
    n.bridge = std::string("nbtest") + name;
    state.networks.push_back(n);
  }
  auto add = [&](const std::string& id, const std::string& name, const std::string& net,
                 const std::string& ip, std::vector<PortMapping> ports) {
    EndpointRecord e;
    e.container_id = id;
    e.container_name = name;
    e.hostname = name + "-host";
    e.network = net;
    e.ip = *Ipv4::Parse(ip);
    e.host_veth = "nvtest" + id;
    e.ports = std::move(ports);
    e.complete = true;
    state.endpoints.push_back(e);
  };
  add("0123456789abcdef", "web", "a", "10.213.1.2", {{"127.0.0.1", 8080, 80, "tcp"}});
  add("fedcba9876543210", "client", "a", "10.213.1.3", {});
  add("1111111111111111", "other", "b", "10.213.2.2", {{"", 5353, 53, "udp"}});
  return state;
}

TEST(RenderHostsTest, SelfAndPeersOnTheSameNetworkOnly) {
  NetworkState state = TwoNetworks();
  std::string hosts = RenderHosts(state, state.endpoints[0]);
  EXPECT_THAT(hosts, HasSubstr("127.0.0.1\tlocalhost\n"));
  EXPECT_THAT(hosts, HasSubstr("10.213.1.2\tweb web-host 0123456789ab\n"));
  EXPECT_THAT(hosts, HasSubstr("10.213.1.3\tclient client-host fedcba987654\n"));
  EXPECT_THAT(hosts, Not(HasSubstr("other")));
  EXPECT_THAT(hosts, Not(HasSubstr("10.213.2.2")));
}

TEST(RenderHostsTest, AContainerOnTwoNetworksSeesBothAndIsSeenOnEach) {
  NetworkState state = TwoNetworks();
  // web (on a) connected to b as well.
  EndpointRecord second = state.endpoints[0];
  second.network = "b";
  second.ip = *Ipv4::Parse("10.213.2.3");
  second.ifname = "eth1";
  state.endpoints.push_back(second);
  std::string web = RenderHosts(state, "0123456789abcdef");
  EXPECT_THAT(web, HasSubstr("10.213.1.2\tweb web-host 0123456789ab\n"));
  EXPECT_THAT(web, HasSubstr("10.213.2.3\tweb web-host 0123456789ab\n"));
  EXPECT_THAT(web, HasSubstr("10.213.1.3\tclient"));
  EXPECT_THAT(web, HasSubstr("10.213.2.2\tother"));
  // Each peer sees web at its address on the network they share.
  std::string other = RenderHosts(state, "1111111111111111");
  EXPECT_THAT(other, HasSubstr("10.213.2.3\tweb"));
  EXPECT_THAT(other, Not(HasSubstr("10.213.1.2")));
  std::string client = RenderHosts(state, state.endpoints[1]);
  EXPECT_THAT(client, HasSubstr("10.213.1.2\tweb"));
  EXPECT_THAT(client, Not(HasSubstr("10.213.2.3")));
  // A container with no endpoint left has localhost only.
  EXPECT_THAT(RenderHosts(state, "nobody"), Not(HasSubstr("10.213.")));
}

TEST(RenderResolvConfTest, DropsLoopbackResolversKeepsSearch) {
  std::string out = RenderResolvConf(
      "# generated\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\n"
      "search example.com  corp\noptions edns0 trust-ad\nsortlist 1.2.3.4\n");
  EXPECT_EQ(out, "nameserver 10.1.2.3\nsearch example.com corp\noptions edns0 trust-ad\n");
  EXPECT_EQ(RenderResolvConf(""), "");
}

TEST(RenderRulesetTest, NatMasqueradeAndIsolation) {
  NetworkState state = TwoNetworks();
  std::string rules = RenderRuleset(state, "nodeagent_test", "nbtest");
  // Replaced atomically.
  EXPECT_THAT(rules, HasSubstr("add table ip nodeagent_test\ndelete table ip nodeagent_test\n"));
  // 127.0.0.1 publishing: output chain only.
  EXPECT_THAT(rules, HasSubstr("ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.213.1.2:80"));
  // All-address publishing: prerouting and output.
  EXPECT_THAT(rules, HasSubstr("fib daddr type local udp dport 5353 dnat to 10.213.2.2:53"));
  size_t pre = rules.find("chain prerouting");
  size_t out = rules.find("chain output");
  ASSERT_NE(pre, std::string::npos);
  ASSERT_NE(out, std::string::npos);
  EXPECT_EQ(rules.substr(pre, out - pre).find("8080"), std::string::npos);
  EXPECT_NE(rules.substr(pre, out - pre).find("5353"), std::string::npos);
  EXPECT_THAT(rules,
              HasSubstr("ip saddr 10.213.1.0/24 oifname != \"nbtesta\" masquerade comment \"a\""));
  EXPECT_THAT(rules, HasSubstr("oifname \"nbtesta\" ip saddr 127.0.0.0/8 masquerade"));
  EXPECT_THAT(rules,
              HasSubstr("iifname \"nbtestb\" oifname \"nbtest*\" oifname != \"nbtestb\" drop"));
}

TEST(RenderRulesetTest, NoNetworksDeletesTheTable) {
  EXPECT_EQ(RenderRuleset(NetworkState(), "t", "nb"), "add table ip t\ndelete table ip t\n");
}

}  // namespace
}  // namespace nodeagent::network
