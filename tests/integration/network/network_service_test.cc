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
#include "nodeagent/v1/network.grpc.pb.h"
#include "services/common/grpc/service_host.h"
#include "services/common/linux/files.h"
#include "services/network/core/network_manager.h"
#include "tests/integration/network/net_test_util.h"

namespace nodeagent::network {
namespace {

using ::nodeagent::testing::BackgroundProcess;
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

}  // namespace
}  // namespace nodeagent::network
