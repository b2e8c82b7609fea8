// The network service against the real kernel (run as root): bridges, pinned namespaces, veth
// pairs, addresses and routes, nftables NAT, hosts files, reconcile after a restart. Traffic
// only flows between namespaces these tests made and the host's loopback.

#include "services/network/core/network_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/files.h"
#include "tests/integration/network/net_test_util.h"
#include "tests/support/subprocess.h"

namespace nodeagent::network {
namespace {

using ::nodeagent::testing::BackgroundProcess;
using ::nodeagent::testing::CommandResult;
using ::nodeagent::testing::FreeLoopbackPort;
using ::nodeagent::testing::HostLinksWithPrefix;
using ::nodeagent::testing::HostLinksWithPrefixOnceReaped;
using ::nodeagent::testing::HttpdArgv;
using ::nodeagent::testing::HttpGetFromHost;
using ::nodeagent::testing::HttpGetFromNetns;
using ::nodeagent::testing::MakeTempDir;
using ::nodeagent::testing::MountsBelow;
using ::nodeagent::testing::NftTable;
using ::nodeagent::testing::RunCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ino_t Inode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class NetworkManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = MakeTempDir("/var/tmp", absl::StrCat("nodeagent-net-it-", getpid()));
    options_.root = base_ + "/state";
    options_.run_dir = base_ + "/run";
    ASSERT_TRUE(nodeagent::linux::MakeDirs(options_.run_dir).ok());
    Reopen();
  }

  void Reopen() {
    manager_.reset();
    absl::StatusOr<std::unique_ptr<NetworkManager>> m = NetworkManager::Open(options_);
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    names_ = manager_->names();
  }

  void TearDown() override {
    if (manager_ != nullptr) {
      for (const NetworkInfo& n : manager_->ListNetworks()) {
        for (const EndpointRecord& e : n.endpoints) {
          EXPECT_TRUE(manager_->Detach(e.container_id).ok());
        }
        EXPECT_TRUE(manager_->RemoveNetwork(n.network.name).ok());
      }
      manager_->Shutdown();
      manager_.reset();
    }
    // Nothing of this node is left in the kernel, whatever the test did.
    std::vector<std::string> links = HostLinksWithPrefix(names_.bridge_prefix);
    std::vector<std::string> veths = HostLinksWithPrefix(names_.veth_prefix);
    links.insert(links.end(), veths.begin(), veths.end());
    EXPECT_THAT(links, IsEmpty()) << "links left behind";
    EXPECT_EQ(NftTable(names_.nft_table), "") << "nftables table left behind";
    EXPECT_THAT(MountsBelow(base_), IsEmpty()) << "mounts left behind";
    // Forced cleanup so one failure does not spill into the next test.
    for (const std::string& link : links) RunCommand({"ip", "link", "del", link});
    RunCommand({"nft", "delete", "table", "ip", names_.nft_table});
    std::vector<std::string> mounts = MountsBelow(base_);
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) RunCommand({"umount", "-l", *it});
    RunCommand({"rm", "-rf", "--one-file-system", base_});
  }

  AttachResult MustAttach(const std::string& id, const std::string& name,
                          const std::string& network = "", std::vector<PortMapping> ports = {},
                          bool connect = false) {
    AttachRequest request;
    request.container_id = id;
    request.container_name = connect ? "" : name;
    request.hostname = connect ? "" : name + "-host";
    request.network = network;
    request.ports = std::move(ports);
    request.connect = connect;
    absl::StatusOr<AttachResult> r = manager_->Attach(request);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AttachResult();
  }

  // `ip` run inside the namespace pinned at `netns`.
  static CommandResult IpIn(const std::string& netns, std::vector<std::string> args) {
    args.insert(args.begin(), {"nsenter", "--net=" + netns, "ip"});
    return RunCommand(args);
  }

  std::string WwwDir(const std::string& text) {
    std::string dir = MakeTempDir(base_, "www");
    std::ofstream(dir + "/index.html") << text << "\n";
    return dir;
  }

  std::string base_;
  ManagerOptions options_;
  KernelNames names_;
  std::unique_ptr<NetworkManager> manager_;
};

TEST_F(NetworkManagerTest, CreateListGetRemove) {
  absl::StatusOr<NetworkInfo> created = manager_->CreateNetwork("front", "", "");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->network.id.size(), 64u);
  std::string bridge = created->network.bridge;
  EXPECT_THAT(HostLinksWithPrefix(names_.bridge_prefix), ElementsAre(bridge));
  CommandResult addr = RunCommand({"ip", "-4", "-o", "addr", "show", "dev", bridge});
  EXPECT_THAT(addr.out, HasSubstr(absl::StrCat(created->network.gateway.ToString(), "/",
                                               created->network.subnet.prefix)));
  EXPECT_EQ(ReadText(absl::StrCat("/proc/sys/net/ipv4/conf/", bridge, "/route_localnet")), "1\n");
  // Masquerade for the subnet is installed with the network.
  EXPECT_THAT(NftTable(names_.nft_table),
              HasSubstr(absl::StrCat("ip saddr ", created->network.subnet.ToString(),
                                     " oifname != \"", bridge, "\" masquerade")));

  ASSERT_EQ(manager_->ListNetworks().size(), 1u);
  EXPECT_TRUE(manager_->GetNetwork("front").ok());
  EXPECT_TRUE(manager_->GetNetwork(created->network.id).ok());
  EXPECT_EQ(manager_->GetNetwork("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->CreateNetwork("front", "", "").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(manager_->CreateNetwork("host", "", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->CreateNetwork("a/b", "", "").status().code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(manager_->RemoveNetwork("front").ok());
  EXPECT_THAT(HostLinksWithPrefix(names_.bridge_prefix), IsEmpty());
  EXPECT_EQ(NftTable(names_.nft_table), "");
  EXPECT_EQ(manager_->RemoveNetwork("front").code(), absl::StatusCode::kNotFound);
}

TEST_F(NetworkManagerTest, SubnetsNeverOverlapNetworksOrHostRoutes) {
  absl::StatusOr<NetworkInfo> a = manager_->CreateNetwork("a", "", "");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<NetworkInfo> b = manager_->CreateNetwork("b", "", "");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(a->network.subnet.Overlaps(b->network.subnet));
  absl::Status clash = manager_->CreateNetwork("c", a->network.subnet.ToString(), "").status();
  EXPECT_EQ(clash.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(clash.message()), HasSubstr("overlaps network \"a\""));

  // A route of the host (any non-default one, e.g. the uplink's subnet) is refused as well.
  CommandResult routes = RunCommand({"ip", "-4", "-o", "route", "show", "table", "main"});
  std::string host_subnet;
  for (absl::string_view line : absl::StrSplit(routes.out, '\n', absl::SkipEmpty())) {
    std::string dst(line.substr(0, line.find(' ')));
    absl::StatusOr<Subnet> s = Subnet::Parse(dst);
    if (dst != "default" && s.ok() && s->prefix <= 30 && !s->Overlaps(a->network.subnet) &&
        !s->Overlaps(b->network.subnet)) {
      host_subnet = dst;
      break;
    }
  }
  if (!host_subnet.empty()) {
    absl::Status overlap = manager_->CreateNetwork("d", host_subnet, "").status();
    EXPECT_EQ(overlap.code(), absl::StatusCode::kFailedPrecondition) << host_subnet;
    EXPECT_THAT(std::string(overlap.message()), HasSubstr("a route of the host"));
  }
  EXPECT_EQ(manager_->CreateNetwork("e", "10.213.0.0/33", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->CreateNetwork("f", "10.213.250.0/24", "10.213.251.1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(HostLinksWithPrefix(names_.bridge_prefix).size(), 2u);
}

TEST_F(NetworkManagerTest, AttachMakesEth0WithAddressRouteAndLoopback) {
  AttachResult r = MustAttach("c1", "web");
  EXPECT_EQ(r.network, kDefaultNetwork);  // The default network was made on first use.
  EXPECT_EQ(r.netns_path, options_.run_dir + "/netns/c1");
  EXPECT_THAT(MountsBelow(r.netns_path), ElementsAre(r.netns_path));

  CommandResult addr = IpIn(r.netns_path, {"-4", "-o", "addr", "show"});
  EXPECT_THAT(addr.out,
              HasSubstr(absl::StrCat("eth0    inet ", r.ip_address, "/", r.prefix_length)));
  EXPECT_THAT(addr.out, HasSubstr("lo    inet 127.0.0.1/8"));
  CommandResult link = IpIn(r.netns_path, {"-o", "link", "show", "eth0"});
  EXPECT_THAT(link.out, HasSubstr("state UP"));
  EXPECT_THAT(link.out, HasSubstr("mtu 65000"));  // The default MTU (options_.default_mtu).
  EXPECT_THAT(link.out, HasSubstr(r.mac_address));
  CommandResult route = IpIn(r.netns_path, {"-4", "route", "show", "default"});
  EXPECT_THAT(route.out, HasSubstr(absl::StrCat("default via ", r.gateway, " dev eth0")));
  // The host end hangs on the network's bridge.
  absl::StatusOr<NetworkInfo> net = manager_->GetNetwork(kDefaultNetwork);
  ASSERT_TRUE(net.ok());
  CommandResult host_end = RunCommand({"ip", "-o", "link", "show", r.host_veth});
  EXPECT_THAT(host_end.out, HasSubstr("master " + net->network.bridge));
  // The gateway answers from inside.
  CommandResult ping = RunCommand(
      {"nsenter", "--net=" + r.netns_path, "busybox", "ping", "-c", "1", "-W", "2", r.gateway});
  EXPECT_EQ(ping.exit_code, 0) << ping.out << ping.err;

  EXPECT_THAT(ReadText(r.hosts_path), HasSubstr(r.ip_address + "\tweb web-host"));
  EXPECT_TRUE(nodeagent::linux::PathExists(r.resolv_conf_path));

  // Idempotent per container id.
  AttachResult again = MustAttach("c1", "web");
  EXPECT_EQ(again.ip_address, r.ip_address);
  EXPECT_EQ(again.host_veth, r.host_veth);

  ASSERT_TRUE(manager_->Detach("c1").ok());
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_FALSE(nodeagent::linux::PathExists(r.netns_path));
  EXPECT_FALSE(nodeagent::linux::PathExists(r.hosts_path));
  // The netns dir stays a mount point while the service runs (Shutdown drops it).
  EXPECT_THAT(MountsBelow(base_), ElementsAre(manager_->NetnsDir()));
  EXPECT_TRUE(manager_->Detach("c1").ok());  // Twice is fine.
  EXPECT_TRUE(manager_->Detach("never-attached").ok());
}

TEST_F(NetworkManagerTest, TwoContainersTalkByIpAndName) {
  ASSERT_TRUE(manager_->CreateNetwork("app", "", "").ok());
  AttachResult web = MustAttach("web1", "web", "app");
  AttachResult client = MustAttach("client1", "client", "app");
  BackgroundProcess httpd(HttpdArgv(web.netns_path, 80, WwwDir("hello from web")));

  EXPECT_THAT(HttpGetFromNetns(client.netns_path, web.ip_address, 80, 10s),
              HasSubstr("hello from web"));
  // By name, through the hosts file the container gets (bound over /etc/hosts).
  EXPECT_THAT(ReadText(client.hosts_path), HasSubstr(web.ip_address + "\tweb web-host"));
  EXPECT_THAT(HttpGetFromNetns(client.netns_path, "web", 80, 10s, client.hosts_path),
              HasSubstr("hello from web"));
}

TEST_F(NetworkManagerTest, NetworksAreIsolated) {
  ASSERT_TRUE(manager_->CreateNetwork("red", "", "").ok());
  ASSERT_TRUE(manager_->CreateNetwork("blue", "", "").ok());
  AttachResult server = MustAttach("srv", "srv", "red");
  AttachResult same = MustAttach("same", "same", "red");
  AttachResult other = MustAttach("other", "other", "blue");
  BackgroundProcess httpd(HttpdArgv(server.netns_path, 80, WwwDir("red only")));
  // The server is up and reachable from its own network...
  ASSERT_THAT(HttpGetFromNetns(same.netns_path, server.ip_address, 80, 10s), HasSubstr("red only"));
  // ...but not from the other one (the host routes between bridges; our rule drops it), and
  // the other network's hosts file does not name it.
  EXPECT_EQ(HttpGetFromNetns(other.netns_path, server.ip_address, 80, 0ms), "");
  EXPECT_THAT(ReadText(other.hosts_path), Not(HasSubstr("srv")));
  EXPECT_THAT(ReadText(same.hosts_path), HasSubstr("srv"));
}

TEST_F(NetworkManagerTest, PublishedPortsReachableFromHostLoopback) {
  int all_port = FreeLoopbackPort();
  int local_port = FreeLoopbackPort();
  AttachResult web = MustAttach("pub1", "pub", "",
                                {{"", static_cast<uint32_t>(all_port), 80, "tcp"},
                                 {"127.0.0.1", static_cast<uint32_t>(local_port), 81, "tcp"},
                                 {"", static_cast<uint32_t>(all_port), 53, "udp"}});
  std::string dir = WwwDir("published");
  BackgroundProcess httpd80(HttpdArgv(web.netns_path, 80, dir));
  BackgroundProcess httpd81(HttpdArgv(web.netns_path, 81, dir));
  EXPECT_THAT(HttpGetFromHost("127.0.0.1", all_port, 10s), HasSubstr("published"));
  EXPECT_THAT(HttpGetFromHost("127.0.0.1", local_port, 10s), HasSubstr("published"));

  std::string table = NftTable(names_.nft_table);
  EXPECT_THAT(table,
              HasSubstr(absl::StrCat("tcp dport ", all_port, " dnat to ", web.ip_address, ":80")));
  EXPECT_THAT(table, HasSubstr(absl::StrCat("ip daddr 127.0.0.1 tcp dport ", local_port,
                                            " dnat to ", web.ip_address, ":81")));
  EXPECT_THAT(table,
              HasSubstr(absl::StrCat("udp dport ", all_port, " dnat to ", web.ip_address, ":53")));

  // A second container cannot take a published host port; nothing of it is left.
  AttachRequest clash;
  clash.container_id = "pub2";
  clash.ports = {{"127.0.0.1", static_cast<uint32_t>(all_port), 80, "tcp"}};
  absl::StatusOr<AttachResult> refused = manager_->Attach(clash);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("already published by pub"));
  EXPECT_EQ(HostLinksWithPrefix(names_.veth_prefix).size(), 1u);

  ASSERT_TRUE(manager_->Detach("pub1").ok());
  table = NftTable(names_.nft_table);
  EXPECT_THAT(table, Not(HasSubstr("dnat")));
  EXPECT_THAT(table, HasSubstr("masquerade"));  // The network is still there.
}

// A detached container's veth is deleted after Detach returns; attaching the same container
// again at once (a restart) must get a veth that deletion does not take away.
TEST_F(NetworkManagerTest, ReattachRightAfterDetachKeepsTheNewVeth) {
  MustAttach("again1", "again1");
  ASSERT_TRUE(manager_->Detach("again1").ok());
  AttachResult second = MustAttach("again1", "again1");
  // (While the first veth waits for deletion, its name and address are not handed out again.)
  std::vector<std::string> left = HostLinksWithPrefixOnceReaped(names_.veth_prefix, 1);
  EXPECT_THAT(left, ElementsAre(second.host_veth));
  EXPECT_EQ(IpIn(second.netns_path, {"-4", "-o", "addr", "show", "eth0"}).exit_code, 0);
  ASSERT_TRUE(manager_->Detach("again1").ok());
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
}

TEST_F(NetworkManagerTest, LeasesAreUniqueFreedAndSurviveRestart) {
  ASSERT_TRUE(manager_->CreateNetwork("ipam", "10.213.240.0/29", "").ok());  // 5 leases.
  std::set<std::string> ips;
  for (const char* id : {"a", "b", "c"}) ips.insert(MustAttach(id, id, "ipam").ip_address);
  EXPECT_EQ(ips.size(), 3u);
  std::string b_ip = manager_->GetNetwork("ipam")->endpoints[1].ip.ToString();
  ASSERT_TRUE(manager_->Detach("b").ok());

  Reopen();  // A restart keeps every live lease.
  absl::StatusOr<NetworkInfo> net = manager_->GetNetwork("ipam");
  ASSERT_TRUE(net.ok());
  ASSERT_EQ(net->endpoints.size(), 2u);
  std::string d_ip = MustAttach("d", "d", "ipam").ip_address;
  EXPECT_EQ(ips.count(d_ip), 0u) << "handed out an address in use, or the freed one at once";
  std::string e_ip = MustAttach("e", "e", "ipam").ip_address;
  // The subnet is now full but for the freed address, which is handed out last.
  EXPECT_EQ(MustAttach("f", "f", "ipam").ip_address, b_ip);
  EXPECT_NE(d_ip, e_ip);
  AttachRequest full;
  full.container_id = "g";
  full.network = "ipam";
  EXPECT_EQ(manager_->Attach(full).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(manager_->RemoveNetwork("ipam").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NetworkManagerTest, HostsFilesRewrittenInPlace) {
  AttachResult a = MustAttach("ha", "alpha");
  ino_t inode = Inode(a.hosts_path);
  ASSERT_NE(inode, 0u);
  AttachResult b = MustAttach("hb", "beta");
  EXPECT_THAT(ReadText(a.hosts_path), HasSubstr(b.ip_address + "\tbeta"));
  EXPECT_THAT(ReadText(b.hosts_path), HasSubstr(a.ip_address + "\talpha"));
  EXPECT_EQ(Inode(a.hosts_path), inode) << "a bind mount of the old file would go stale";
  ASSERT_TRUE(manager_->Detach("hb").ok());
  EXPECT_THAT(ReadText(a.hosts_path), Not(HasSubstr("beta")));
  EXPECT_EQ(Inode(a.hosts_path), inode);
}

TEST_F(NetworkManagerTest, FailedAttachLeavesNothing) {
  AttachRequest request;
  request.container_id = "x1";
  request.network = "missing";
  EXPECT_EQ(manager_->Attach(request).status().code(), absl::StatusCode::kNotFound);
  request.network = "";
  request.ports = {{"", 0, 80, "tcp"}};
  EXPECT_EQ(manager_->Attach(request).status().code(), absl::StatusCode::kInvalidArgument);
  request.container_id = "../etc";
  request.ports.clear();
  EXPECT_EQ(manager_->Attach(request).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(HostLinksWithPrefix(names_.veth_prefix), IsEmpty());
  EXPECT_THAT(MountsBelow(base_), IsEmpty());
}

TEST_F(NetworkManagerTest, ReconcileRemovesOrphansAndRepairsLiveEndpoints) {
  int port = FreeLoopbackPort();
  AttachResult live =
      MustAttach("live", "live", "", {{"", static_cast<uint32_t>(port), 80, "tcp"}});
  // Orphans as a crash (of this service, mid-attach or mid-detach) could leave them.
  std::string tag = names_.tag;
  ASSERT_EQ(RunCommand({"ip", "link", "add", names_.veth_prefix + "dead0001", "type", "veth",
                        "peer", "name", names_.veth_prefix + "dead0002"})
                .exit_code,
            0);
  ASSERT_EQ(RunCommand({"ip", "link", "add", names_.bridge_prefix + "dead01", "type", "bridge"})
                .exit_code,
            0);
  std::string orphan_pin = options_.run_dir + "/netns/ghost";
  ASSERT_EQ(RunCommand({"touch", orphan_pin}).exit_code, 0);
  CommandResult pinned = RunCommand({"unshare", "--net=" + orphan_pin, "true"});
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  ASSERT_EQ(RunCommand({"nft", "add", "rule", "ip", names_.nft_table, "output", "tcp", "dport", "1",
                        "drop"})
                .exit_code,
            0);
  ASSERT_TRUE(nodeagent::linux::MakeDirs(options_.root + "/containers/ghost").ok());
  // And damage to a live endpoint: its veth pair is gone.
  ASSERT_EQ(RunCommand({"ip", "link", "del", live.host_veth}).exit_code, 0);

  Reopen();

  EXPECT_THAT(HostLinksWithPrefix(names_.veth_prefix), ElementsAre(live.host_veth));
  EXPECT_EQ(HostLinksWithPrefix(names_.bridge_prefix).size(), 1u);
  EXPECT_FALSE(nodeagent::linux::PathExists(orphan_pin));
  EXPECT_FALSE(nodeagent::linux::PathExists(options_.root + "/containers/ghost"));
  std::string table = NftTable(names_.nft_table);
  EXPECT_THAT(table, Not(HasSubstr("dport 1 drop")));
  EXPECT_THAT(table, HasSubstr(absl::StrCat("dport ", port, " dnat to ", live.ip_address)));
  // The live endpoint works again: eth0 is back with its address.
  CommandResult addr = IpIn(live.netns_path, {"-4", "-o", "addr", "show", "eth0"});
  EXPECT_THAT(addr.out, HasSubstr(live.ip_address));
  BackgroundProcess httpd(HttpdArgv(live.netns_path, 80, WwwDir("repaired")));
  EXPECT_THAT(HttpGetFromHost("127.0.0.1", port, 10s), HasSubstr("repaired"));
}

TEST_F(NetworkManagerTest, EndpointWhoseNamespaceIsGoneIsReleasedOnStart) {
  AttachResult gone = MustAttach("gone", "gone");
  manager_.reset();
  // As after a reboot: the pin (on a tmpfs run dir) is gone, the veth pair with it.
  ASSERT_EQ(RunCommand({"umount", gone.netns_path}).exit_code, 0);
  Reopen();
  absl::StatusOr<NetworkInfo> net = manager_->GetNetwork(kDefaultNetwork);
  ASSERT_TRUE(net.ok());
  EXPECT_THAT(net->endpoints, IsEmpty());
  EXPECT_FALSE(nodeagent::linux::PathExists(gone.netns_path));
  EXPECT_THAT(HostLinksWithPrefix(names_.veth_prefix), IsEmpty());
}

TEST_F(NetworkManagerTest, ConnectAddsAnInterfaceToTheSameNamespaceAndDisconnectRemovesIt) {
  ASSERT_TRUE(manager_->CreateNetwork("front", "", "").ok());
  ASSERT_TRUE(manager_->CreateNetwork("back", "", "", 1500).ok());
  AttachResult web = MustAttach("web1", "web", "front");
  AttachResult peer = MustAttach("peer1", "peer", "front");
  AttachResult db = MustAttach("db1", "db", "back");
  std::string db_www = WwwDir("hello from db");
  BackgroundProcess httpd(HttpdArgv(db.netns_path, 80, db_www));
  // Not connected yet: the networks are isolated.
  EXPECT_EQ(HttpGetFromNetns(web.netns_path, db.ip_address, 80, 0ms), "");

  AttachResult back = MustAttach("web1", "", "back", {}, /*connect=*/true);
  EXPECT_THAT(IpIn(web.netns_path, {"-o", "link", "show", "eth1"}).out, HasSubstr("mtu 1500"));
  EXPECT_EQ(back.netns_path, web.netns_path);
  EXPECT_EQ(back.interface_name, "eth1");
  EXPECT_EQ(back.network, "back");
  EXPECT_EQ(web.interface_name, "eth0");
  CommandResult addr = IpIn(web.netns_path, {"-4", "-o", "addr", "show"});
  EXPECT_THAT(addr.out, HasSubstr(absl::StrCat("eth0    inet ", web.ip_address, "/")));
  EXPECT_THAT(addr.out, HasSubstr(absl::StrCat("eth1    inet ", back.ip_address, "/")));
  // The first network keeps the default route.
  EXPECT_THAT(IpIn(web.netns_path, {"-4", "route", "show", "default"}).out,
              HasSubstr(absl::StrCat("default via ", web.gateway, " dev eth0")));
  // Idempotent per container and network.
  EXPECT_EQ(MustAttach("web1", "", "back", {}, true).ip_address, back.ip_address);

  // web now reaches db, by address and by name; peer (on front only) still does not.
  EXPECT_THAT(HttpGetFromNetns(web.netns_path, db.ip_address, 80, 10s), HasSubstr("from db"));
  EXPECT_THAT(HttpGetFromNetns(web.netns_path, "db", 80, 10s, web.hosts_path),
              HasSubstr("from db"));
  EXPECT_EQ(HttpGetFromNetns(peer.netns_path, db.ip_address, 80, 0ms), "");
  // Every hosts file on both networks is current: web appears at its address on each.
  EXPECT_THAT(ReadText(web.hosts_path), HasSubstr(db.ip_address + "\tdb db-host"));
  EXPECT_THAT(ReadText(web.hosts_path), HasSubstr(peer.ip_address + "\tpeer peer-host"));
  EXPECT_THAT(ReadText(db.hosts_path), HasSubstr(back.ip_address + "\tweb web-host"));
  EXPECT_THAT(ReadText(peer.hosts_path), HasSubstr(web.ip_address + "\tweb web-host"));
  EXPECT_THAT(ReadText(peer.hosts_path), Not(HasSubstr(back.ip_address)));
  absl::StatusOr<NetworkInfo> info = manager_->GetNetwork("back");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->endpoints.size(), 2u);

  // A restart keeps both endpoints of web.
  Reopen();
  EXPECT_EQ(HostLinksWithPrefix(names_.veth_prefix).size(), 4u);

  // Disconnect from the first network: eth0 goes, the default route moves to eth1.
  ASSERT_TRUE(manager_->Detach("web1", "front").ok());
  addr = IpIn(web.netns_path, {"-4", "-o", "addr", "show"});
  EXPECT_THAT(addr.out, Not(HasSubstr("eth0")));
  EXPECT_THAT(addr.out, HasSubstr(back.ip_address));
  EXPECT_THAT(IpIn(web.netns_path, {"-4", "route", "show", "default"}).out,
              HasSubstr(absl::StrCat("default via ", back.gateway, " dev eth1")));
  EXPECT_THAT(ReadText(peer.hosts_path), Not(HasSubstr("web")));
  EXPECT_THAT(ReadText(web.hosts_path), Not(HasSubstr("peer")));
  EXPECT_THAT(ReadText(web.hosts_path), HasSubstr("db"));
  EXPECT_THAT(HttpGetFromNetns(web.netns_path, db.ip_address, 80, 10s), HasSubstr("from db"));
  EXPECT_EQ(manager_->Detach("web1", "front").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Detach("web1", "nosuch").code(), absl::StatusCode::kNotFound);

  // Disconnected from every network, the container keeps its namespace (loopback only) and
  // can be connected again; a detach of everything then removes it all.
  ASSERT_TRUE(manager_->Detach("web1", "back").ok());
  EXPECT_TRUE(nodeagent::linux::PathExists(web.netns_path));
  EXPECT_THAT(ReadText(db.hosts_path), Not(HasSubstr("web")));
  AttachResult again = MustAttach("web1", "", "front", {}, true);
  EXPECT_EQ(again.interface_name, "eth0");
  EXPECT_THAT(IpIn(web.netns_path, {"-4", "route", "show", "default"}).out, HasSubstr("dev eth0"));
  EXPECT_THAT(ReadText(peer.hosts_path), HasSubstr(again.ip_address + "\tweb web-host"));
  ASSERT_TRUE(manager_->Detach("web1").ok());
  EXPECT_FALSE(nodeagent::linux::PathExists(web.netns_path));
  EXPECT_EQ(HostLinksWithPrefixOnceReaped(names_.veth_prefix, 2).size(), 2u);
}

TEST_F(NetworkManagerTest, ConnectRefusesAContainerWithoutANamespaceOfTheService) {
  ASSERT_TRUE(manager_->CreateNetwork("front", "", "").ok());
  AttachRequest request;
  request.container_id = "hostmode1";
  request.network = "front";
  request.connect = true;
  absl::StatusOr<AttachResult> refused = manager_->Attach(request);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("no network namespace"));
  EXPECT_THAT(HostLinksWithPrefix(names_.veth_prefix), IsEmpty());
  EXPECT_FALSE(nodeagent::linux::PathExists(manager_->NetnsDir() + "/hostmode1"));
  EXPECT_THAT(manager_->GetNetwork("front")->endpoints, IsEmpty());
}

}  // namespace
}  // namespace nodeagent::network
