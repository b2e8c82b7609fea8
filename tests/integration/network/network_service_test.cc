// The gRPC edge of the network service (status codes and messages, in process) and the
// node-networkd binary surviving SIGKILL: what it made stays usable, a restart reconciles, and
// a detach after the restart leaves nothing behind.

#include "services/network/grpc/network_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nodeagent/v1/network.grpc.pb.h"
#include "services/common/grpc/service_host.h"
#include "services/common/linux/files.h"
#include "services/network/core/network_manager.h"
#include "tests/integration/network/net_test_util.h"

namespace nodeagent::network {
namespace {

using ::nodeagent::testing::BackgroundProcess;
using ::nodeagent::testing::CommandResult;
using ::nodeagent::testing::FreeLoopbackPort;
using ::nodeagent::testing::HostLinksWithPrefix;
using ::nodeagent::testing::HttpdArgv;
using ::nodeagent::testing::HttpGetFromHost;
using ::nodeagent::testing::MakeTempDir;
using ::nodeagent::testing::MountsBelow;
using ::nodeagent::testing::NftTable;
using ::nodeagent::testing::RunCommand;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

std::unique_ptr<grpc::ClientContext> Deadline(std::chrono::seconds s = 10s) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + s);
  return context;
}

class NetworkServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = MakeTempDir("/var/tmp", absl::StrCat("nodeagent-netsvc-it-", getpid()));
    root_ = base_ + "/state";
    run_dir_ = base_ + "/run";
    ASSERT_TRUE(nodeagent::linux::MakeDirs(run_dir_).ok());
    names_ = KernelNamesFor(root_);
  }

  void TearDown() override {
    std::vector<std::string> links = HostLinksWithPrefix(names_.bridge_prefix);
    std::vector<std::string> veths = HostLinksWithPrefix(names_.veth_prefix);
    links.insert(links.end(), veths.begin(), veths.end());
    EXPECT_THAT(links, IsEmpty()) << "links left behind";
    EXPECT_EQ(NftTable(names_.nft_table), "") << "nftables table left behind";
    EXPECT_THAT(MountsBelow(base_), IsEmpty()) << "mounts left behind";
    for (const std::string& link : links) RunCommand({"ip", "link", "del", link});
    RunCommand({"nft", "delete", "table", "ip", names_.nft_table});
    std::vector<std::string> mounts = MountsBelow(base_);
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) RunCommand({"umount", "-l", *it});
    RunCommand({"rm", "-rf", "--one-file-system", base_});
  }

  std::unique_ptr<v1::NetworkService::Stub> Stub() {
    return v1::NetworkService::NewStub(DialUnixSocket(ServiceSocketPath(run_dir_, "network")));
  }

  // Starts node-networkd and waits (with a deadline) until it answers.
  std::unique_ptr<BackgroundProcess> StartDaemon() {
    auto daemon = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{NODE_NETWORKD_PATH, "--root", root_, "--run-dir", run_dir_},
        base_ + "/networkd.log");
    auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      auto context = Deadline(1s);
      v1::ListNetworksResponse response;
      if (Stub()->ListNetworks(context.get(), v1::ListNetworksRequest(), &response).ok()) {
        return daemon;
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "node-networkd did not come up";
    return daemon;
  }

  std::string base_;
  std::string root_;
  std::string run_dir_;
  KernelNames names_;
};

TEST_F(NetworkServiceTest, StatusCodesAtTheEdge) {
  ManagerOptions options;
  options.root = root_;
  options.run_dir = run_dir_;
  absl::StatusOr<std::unique_ptr<NetworkManager>> manager = NetworkManager::Open(options);
  ASSERT_TRUE(manager.ok()) << manager.status();
  NetworkServiceImpl service(manager->get());
  absl::StatusOr<std::unique_ptr<ServiceHost>> host =
      ServiceHost::Start({"network", run_dir_, ""}, {&service});
  ASSERT_TRUE(host.ok()) << host.status();
  auto stub = Stub();

  v1::CreateNetworkRequest create;
  create.set_name("edge");
  create.set_subnet("10.213.0.0/33");
  v1::CreateNetworkResponse created;
  grpc::Status s = stub->CreateNetwork(Deadline().get(), create, &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("create network \"edge\": subnet \"10.213.0.0/33\""));
  create.clear_subnet();
  ASSERT_TRUE(stub->CreateNetwork(Deadline().get(), create, &created).ok());
  EXPECT_EQ(created.network().name(), "edge");
  EXPECT_EQ(stub->CreateNetwork(Deadline().get(), create, &created).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::GetNetworkRequest get;
  get.set_name("nope");
  v1::GetNetworkResponse got;
  EXPECT_EQ(stub->GetNetwork(Deadline().get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::AttachContainerNetworkRequest attach;
  attach.set_container_id("edge1");
  attach.set_container_name("edgy");
  attach.mutable_attachment()->set_mode("edge");
  v1::AttachContainerNetworkResponse attached;
  s = stub->AttachContainer(Deadline().get(), attach, &attached);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(attached.network(), "edge");
  EXPECT_EQ(attached.netns_path(), run_dir_ + "/netns/edge1");
  EXPECT_FALSE(attached.ip_address().empty());

  v1::ListNetworksResponse list;
  ASSERT_TRUE(stub->ListNetworks(Deadline().get(), v1::ListNetworksRequest(), &list).ok());
  ASSERT_EQ(list.networks_size(), 1);
  ASSERT_EQ(list.networks(0).endpoints_size(), 1);
  EXPECT_EQ(list.networks(0).endpoints(0).container_name(), "edgy");

  v1::RemoveNetworkRequest remove;
  remove.set_name("edge");
  v1::RemoveNetworkResponse removed;
  s = stub->RemoveNetwork(Deadline().get(), remove, &removed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("1 container(s) attached: edgy"));

  attach.mutable_attachment()->set_mode("host");
  EXPECT_EQ(stub->AttachContainer(Deadline().get(), attach, &attached).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // connect: only for a container the service made a namespace for.
  v1::AttachContainerNetworkRequest connect;
  connect.set_container_id("hostmode");
  connect.mutable_attachment()->set_mode("edge");
  connect.set_connect(true);
  s = stub->AttachContainer(Deadline().get(), connect, &attached);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("connect container hostmode: the network service holds "
                                           "no network namespace for it"));
  v1::DetachContainerNetworkRequest disconnect;
  disconnect.set_container_id("edge1");
  disconnect.set_network("nosuch");
  v1::DetachContainerNetworkResponse disconnected;
  EXPECT_EQ(stub->DetachContainer(Deadline().get(), disconnect, &disconnected).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::DetachContainerNetworkRequest detach;
  detach.set_container_id("edge1");
  v1::DetachContainerNetworkResponse detached;
  ASSERT_TRUE(stub->DetachContainer(Deadline().get(), detach, &detached).ok());
  ASSERT_TRUE(stub->RemoveNetwork(Deadline().get(), remove, &removed).ok());
  (*host)->Shutdown();
  (*manager)->Shutdown();
}

TEST_F(NetworkServiceTest, SurvivesSigkillAndCleansUpAfterRestart) {
  std::unique_ptr<BackgroundProcess> daemon = StartDaemon();
  int port = FreeLoopbackPort();
  v1::AttachContainerNetworkRequest attach;
  attach.set_container_id("k1");
  attach.set_container_name("killed");
  v1::PortMapping* p = attach.mutable_attachment()->add_ports();
  p->set_host_ip("127.0.0.1");
  p->set_host_port(port);
  p->set_container_port(80);
  p->set_protocol("tcp");
  v1::AttachContainerNetworkResponse attached;
  grpc::Status s = Stub()->AttachContainer(Deadline().get(), attach, &attached);
  ASSERT_TRUE(s.ok()) << s.error_message();

  int status = daemon->Kill(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));
  // The container's network outlives the service.
  std::string www = MakeTempDir(base_, "www");
  RunCommand({"sh", "-c", "echo still-up > " + www + "/index.html"});
  {
    BackgroundProcess httpd(HttpdArgv(attached.netns_path(), 80, www));
    EXPECT_THAT(HttpGetFromHost("127.0.0.1", port, 10s), HasSubstr("still-up"));
  }

  daemon = StartDaemon();  // Reconciles: the live endpoint is kept.
  EXPECT_EQ(HostLinksWithPrefix(names_.veth_prefix).size(), 1u);
  s = Stub()->AttachContainer(Deadline().get(), attach, &attached);  // Idempotent.
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::DetachContainerNetworkRequest detach;
  detach.set_container_id("k1");
  v1::DetachContainerNetworkResponse detached;
  ASSERT_TRUE(Stub()->DetachContainer(Deadline().get(), detach, &detached).ok());
  EXPECT_THAT(HostLinksWithPrefix(names_.veth_prefix), IsEmpty());
  EXPECT_THAT(NftTable(names_.nft_table), ::testing::Not(HasSubstr("dnat")));

  // SIGKILL again, then the default network goes through a fresh daemon.
  daemon->Kill(SIGKILL);
  daemon = StartDaemon();
  v1::RemoveNetworkRequest remove;
  remove.set_name("bridge");
  v1::RemoveNetworkResponse removed;
  s = Stub()->RemoveNetwork(Deadline().get(), remove, &removed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  status = daemon->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// What this node has in the kernel and on disk, listed independently of the service: links
// with its prefixes (`ip -o link`), its nftables table, mounts below the test dir, namespace
// pins, leases in the state files.
struct Leftovers {
  std::vector<std::string> links;
  std::string nft;
  std::vector<std::string> mounts;
  std::vector<std::string> pins;
  std::string leases;
};

TEST_F(NetworkServiceTest, SigkillWithEndpointsAndPortsLeavesNothingOnceRestartedAndDetached) {
  auto snapshot = [&] {
    Leftovers l;
    l.links = HostLinksWithPrefix(names_.bridge_prefix);
    for (const std::string& v : HostLinksWithPrefix(names_.veth_prefix)) l.links.push_back(v);
    l.nft = NftTable(names_.nft_table);
    l.mounts = MountsBelow(base_);
    CommandResult pins = RunCommand({"ls", "-A", run_dir_ + "/netns"});
    l.pins = absl::StrSplit(pins.out, '\n', absl::SkipEmpty());
    CommandResult leases =
        RunCommand({"sh", "-c",
                    absl::StrCat("cat ", run_dir_, "/network/state.json 2>/dev/null | ",
                                 "grep -o '\"ip\": \"[0-9.]*\"'")});
    l.leases = leases.out;
    return l;
  };
  auto print = [](const Leftovers& l) {
    return absl::StrCat("links [", absl::StrJoin(l.links, " "), "] mounts [",
                        absl::StrJoin(l.mounts, " "), "] pins [", absl::StrJoin(l.pins, " "),
                        "] leases [", l.leases, "]\nnft:\n", l.nft);
  };
  Leftovers before = snapshot();
  ASSERT_THAT(before.links, IsEmpty());
  ASSERT_EQ(before.nft, "");

  std::unique_ptr<BackgroundProcess> daemon = StartDaemon();
  for (const char* name : {"leak-a", "leak-b"}) {
    v1::CreateNetworkRequest create;
    create.set_name(name);
    v1::CreateNetworkResponse created;
    ASSERT_TRUE(Stub()->CreateNetwork(Deadline().get(), create, &created).ok());
  }
  int port = FreeLoopbackPort();
  auto attach = [&](const std::string& id, const std::string& network, bool connect,
                    int host_port) {
    v1::AttachContainerNetworkRequest request;
    request.set_container_id(id);
    request.set_container_name(id + "-name");
    request.mutable_attachment()->set_mode(network);
    request.set_connect(connect);
    if (host_port != 0) {
      v1::PortMapping* p = request.mutable_attachment()->add_ports();
      p->set_host_port(host_port);
      p->set_container_port(80);
    }
    v1::AttachContainerNetworkResponse response;
    grpc::Status s = Stub()->AttachContainer(Deadline().get(), request, &response);
    EXPECT_TRUE(s.ok()) << id << ": " << s.error_message();
    return response;
  };
  v1::AttachContainerNetworkResponse web = attach("w1", "leak-a", false, port);
  attach("w1", "leak-b", true, 0);  // Two endpoints in one namespace.
  attach("d1", "leak-b", false, 0);
  v1::AttachContainerNetworkResponse gone = attach("g1", "leak-a", false, 0);
  Leftovers attached = snapshot();
  EXPECT_EQ(attached.links.size(), 2u + 4u) << print(attached);
  EXPECT_THAT(attached.nft, HasSubstr(absl::StrCat("dport ", port, " dnat to ")));
  EXPECT_EQ(attached.pins.size(), 3u) << print(attached);
  EXPECT_THAT(attached.leases, HasSubstr(web.ip_address())) << print(attached);

  ASSERT_TRUE(WIFSIGNALED(daemon->Kill(SIGKILL)));
  // While it is down: what a crash mid-attach leaves (a veth of ours and a pinned namespace
  // that no lease owns), and a lease whose namespace is gone (its pin unmounted).
  ASSERT_EQ(RunCommand({"ip", "link", "add", names_.veth_prefix + "0rphan01", "type", "veth",
                        "peer", "name", names_.veth_prefix + "0rphan02"})
                .exit_code,
            0);
  std::string orphan_pin = run_dir_ + "/netns/orphan";
  ASSERT_EQ(RunCommand({"touch", orphan_pin}).exit_code, 0);
  ASSERT_EQ(RunCommand({"unshare", "--net=" + orphan_pin, "true"}).exit_code, 0);
  ASSERT_EQ(RunCommand({"umount", gone.netns_path()}).exit_code, 0);

  daemon = StartDaemon();  // Reconcile: orphans go, live endpoints stay.
  Leftovers restarted = snapshot();
  EXPECT_EQ(restarted.links.size(), 2u + 3u) << print(restarted);
  for (const std::string& link : restarted.links) {
    EXPECT_THAT(link, Not(HasSubstr("0rphan"))) << print(restarted);
  }
  EXPECT_FALSE(nodeagent::linux::PathExists(orphan_pin));
  EXPECT_FALSE(nodeagent::linux::PathExists(gone.netns_path()));
  EXPECT_EQ(restarted.pins.size(), 2u) << print(restarted);
  EXPECT_THAT(restarted.leases, Not(HasSubstr(gone.ip_address() + "\""))) << print(restarted);
  EXPECT_THAT(restarted.nft,
              HasSubstr(absl::StrCat("dport ", port, " dnat to ", web.ip_address())));
  {
    // The published port still reaches the container that outlived the crash.
    std::string www = MakeTempDir(base_, "www");
    RunCommand({"sh", "-c", "echo survived > " + www + "/index.html"});
    BackgroundProcess httpd(HttpdArgv(web.netns_path(), 80, www));
    EXPECT_THAT(HttpGetFromHost("127.0.0.1", port, 10s), HasSubstr("survived"));
  }

  // The containers go (as the runtime removes them), then the networks.
  for (const char* id : {"w1", "d1", "g1"}) {
    v1::DetachContainerNetworkRequest detach;
    detach.set_container_id(id);
    v1::DetachContainerNetworkResponse detached;
    EXPECT_TRUE(Stub()->DetachContainer(Deadline().get(), detach, &detached).ok()) << id;
  }
  // Veths are deleted just after the reply (the kernel takes ~25 ms for each): wait for them.
  Leftovers detached = snapshot();
  for (int i = 0; i < 500 && detached.links.size() > 2; ++i) {
    std::this_thread::sleep_for(10ms);
    detached = snapshot();
  }
  EXPECT_EQ(detached.links.size(), 2u) << print(detached);  // The two bridges.
  EXPECT_THAT(detached.nft, Not(HasSubstr("dnat")));
  EXPECT_THAT(detached.pins, IsEmpty());
  EXPECT_EQ(detached.leases, "");
  for (const char* name : {"leak-a", "leak-b"}) {
    v1::RemoveNetworkRequest remove;
    remove.set_name(name);
    v1::RemoveNetworkResponse removed;
    EXPECT_TRUE(Stub()->RemoveNetwork(Deadline().get(), remove, &removed).ok());
  }
  int status = daemon->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  Leftovers after = snapshot();
  EXPECT_EQ(print(after), print(before));
}

}  // namespace
}  // namespace nodeagent::network
