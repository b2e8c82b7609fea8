#include "services/network/core/state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "services/network/core/network_manager.h"

namespace nodeagent::network {
namespace {

using ::testing::HasSubstr;

NetworkRecord Net(const std::string& subnet) {
  NetworkRecord n;
  n.name = "n1";
  n.id = std::string(64, 'a');
  n.subnet = *Subnet::Parse(subnet);
  n.gateway = n.subnet.FirstHost();
  n.bridge = "nbabcdaaaaaa";
  n.last_allocated = n.gateway;
  return n;
}

TEST(AllocateTest, HandsOutInOrderSkippingGateway) {
  NetworkRecord n = Net("10.213.0.0/24");
  std::vector<Ipv4> used;
  for (int i = 2; i <= 5; ++i) {
    absl::StatusOr<Ipv4> ip = AllocateAddress(n, used);
    ASSERT_TRUE(ip.ok()) << ip.status();
    EXPECT_EQ(ip->ToString(), "10.213.0." + std::to_string(i));
    used.push_back(*ip);
    n.last_allocated = *ip;
  }
}

TEST(AllocateTest, FreedAddressIsNotReusedAtOnce) {
  NetworkRecord n = Net("10.213.0.0/24");
  n.last_allocated = *Ipv4::Parse("10.213.0.3");
  // .2 was freed; .3 is in use: the next lease is .4, not .2.
  absl::StatusOr<Ipv4> ip = AllocateAddress(n, {*Ipv4::Parse("10.213.0.3")});
  ASSERT_TRUE(ip.ok());
  EXPECT_EQ(ip->ToString(), "10.213.0.4");
}

TEST(AllocateTest, WrapsAroundAndExhausts) {
  NetworkRecord n = Net("10.213.0.0/29");  // Hosts .1 (gateway) to .6.
  std::vector<Ipv4> used;
  std::set<uint32_t> seen;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Ipv4> ip = AllocateAddress(n, used);
    ASSERT_TRUE(ip.ok()) << i << ": " << ip.status();
    EXPECT_TRUE(seen.insert(ip->value).second) << "handed out twice: " << ip->ToString();
    EXPECT_TRUE(n.subnet.Contains(*ip));
    EXPECT_NE(*ip, n.gateway);
    used.push_back(*ip);
    n.last_allocated = *ip;
  }
  absl::StatusOr<Ipv4> full = AllocateAddress(n, used);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.status().message()), HasSubstr("no free address left"));
  // Free .3: it is found by wrapping around.
  used.erase(used.begin() + 1);
  absl::StatusOr<Ipv4> again = AllocateAddress(n, used);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToString(), "10.213.0.3");
}

TEST(StateTest, RoundTrips) {
  NetworkState state;
  state.networks.push_back(Net("10.213.3.0/24"));
  EndpointRecord e;
  e.container_id = "c1";
  e.container_name = "web";
  e.hostname = "web1";
  e.network = "n1";
  e.ip = *Ipv4::Parse("10.213.3.2");
  e.mac = MacForIp(e.ip);
  e.host_veth = "nvabcd12345678";
  e.ports.push_back({"127.0.0.1", 8080, 80, "tcp"});
  e.ports.push_back({"", 5353, 53, "udp"});
  e.complete = true;
  state.endpoints.push_back(e);

  absl::StatusOr<NetworkState> back = ParseState(SerializeState(state));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->networks.size(), 1u);
  EXPECT_EQ(back->networks[0].subnet.ToString(), "10.213.3.0/24");
  EXPECT_EQ(back->networks[0].bridge, "nbabcdaaaaaa");
  ASSERT_EQ(back->endpoints.size(), 1u);
  const EndpointRecord& r = back->endpoints[0];
  EXPECT_EQ(r.container_name, "web");
  EXPECT_EQ(r.ip.ToString(), "10.213.3.2");
  EXPECT_TRUE(r.complete);
  ASSERT_EQ(r.ports.size(), 2u);
  EXPECT_EQ(r.ports[0], (PortMapping{"127.0.0.1", 8080, 80, "tcp"}));
  EXPECT_EQ(r.ports[1], (PortMapping{"", 5353, 53, "udp"}));
}

TEST(StateTest, ContainersAndInterfacesRoundTripAndOldStateGetsThem) {
  NetworkState state;
  state.networks.push_back(Net("10.213.3.0/24"));
  state.containers.push_back({"c1", "web", "web1"});
  EndpointRecord e;
  e.container_id = "c1";
  e.network = "n1";
  e.ip = *Ipv4::Parse("10.213.3.2");
  e.host_veth = "nv1";
  e.ifname = "eth1";
  state.endpoints.push_back(e);
  absl::StatusOr<NetworkState> back = ParseState(SerializeState(state));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->containers.size(), 1u);
  EXPECT_EQ(back->containers[0].hostname, "web1");
  EXPECT_EQ(back->endpoints[0].ifname, "eth1");
  EXPECT_EQ(NextInterfaceName(*back, "c1"), "eth0");
  back->endpoints[0].ifname = "eth0";
  EXPECT_EQ(NextInterfaceName(*back, "c1"), "eth1");
  EXPECT_EQ(NextInterfaceName(*back, "c2"), "eth0");
  EXPECT_NE(back->FindEndpoint("c1", "n1"), nullptr);
  EXPECT_EQ(back->FindEndpoint("c1", "n2"), nullptr);

  // The networks alone (what the state dir keeps).
  absl::StatusOr<NetworkState> networks = ParseState(SerializeState(state, false));
  ASSERT_TRUE(networks.ok());
  EXPECT_EQ(networks->networks.size(), 1u);
  EXPECT_TRUE(networks->containers.empty());
  EXPECT_TRUE(networks->endpoints.empty());

  // A state written before containers and interfaces were recorded.
  absl::StatusOr<NetworkState> old = ParseState(R"({"networks":[],"endpoints":[
      {"container_id":"c9","container_name":"old","network":"n1","ip":"10.213.3.9",
       "host_veth":"nv9","complete":true}]})");
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_EQ(old->containers.size(), 1u);
  EXPECT_EQ(old->containers[0].container_name, "old");
  EXPECT_EQ(old->endpoints[0].ifname, "eth0");
}

TEST(StateTest, CorruptIsDataLoss) {
  EXPECT_EQ(ParseState("{not json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseState(R"({"networks":[{"name":"x"}]})").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(ParseState(R"({"networks":[{"name":"x","id":"1","subnet":"10.0.0.0/33",
      "gateway":"10.0.0.1","bridge":"b"}]})")
                   .ok());
}

TEST(PortSpecTest, Parses) {
  absl::StatusOr<PortMapping> p = ParsePortSpec("8080:80");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, (PortMapping{"", 8080, 80, "tcp"}));
  EXPECT_EQ(*ParsePortSpec("5353:53/udp"), (PortMapping{"", 5353, 53, "udp"}));
  EXPECT_EQ(*ParsePortSpec("127.0.0.1:8080:80/tcp"), (PortMapping{"127.0.0.1", 8080, 80, "tcp"}));
  EXPECT_EQ(PortMappingString(*ParsePortSpec("127.0.0.1:8080:80")), "127.0.0.1:8080->80/tcp");
}

TEST(PortSpecTest, RejectsBadSpecs) {
  for (const char* bad : {"80", "0:80", "8080:0", "70000:80", "8080:80/sctp", "a:80",
                          "1.2.3:8080:80", "8080:80:90:100", "-1:80", ":80"}) {
    absl::StatusOr<PortMapping> p = ParsePortSpec(bad);
    EXPECT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(bad));
  }
}

TEST(KernelNamesTest, FitInterfaceNamesAndDifferPerRoot) {
  KernelNames a = KernelNamesFor("/var/lib/nodeagent/network");
  KernelNames b = KernelNamesFor("/var/tmp/nodeagent-e2e-123/state/network");
  EXPECT_NE(a.tag, b.tag);
  EXPECT_EQ(a.tag.size(), 4u);
  // Bridge: prefix + 6 hex; veth: prefix + 8 hex; IFNAMSIZ-1 is 15.
  EXPECT_LE(a.bridge_prefix.size() + 6, 15u);
  EXPECT_LE(a.veth_prefix.size() + 8, 15u);
  EXPECT_EQ(KernelNamesFor("/x").tag, KernelNamesFor("/x").tag);
}

}  // namespace
}  // namespace nodeagent::network
