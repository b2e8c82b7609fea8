// Networks end to end: `nodectl network ...` against a node of the test's own (nodectl up), and
// containers on bridge networks (`nodectl run --network NAME -p ...`): two containers talking
// by name and by address, ports published on the host's loopback, networks isolated from each
// other, and nothing left in the kernel after `rm`. Traffic stays between the test's own
// namespaces and the host's loopback.

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/network/core/network_manager.h"
#include "tests/e2e/network_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// GET / from 127.0.0.1:port until something answers or the deadline passes.
std::string HttpGetLoopback(int port, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const char request[] = "GET /hostname HTTP/1.0\r\n\r\n";
      if (::send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0) {
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
      }
    }
    ::close(fd);
    if (!response.empty()) return response;
    std::this_thread::sleep_for(50ms);
  }
  return "";
}

class NetworkE2E : public NetworkNodeFixture {
 protected:
  static void TearDownTestSuite() {
    // What a failed test left attached by hand goes first; the fixture then removes
    // containers (their endpoints go with them), networks and the node, and checks the kernel.
    for (const char* id : {"plumb1"}) Nodectl({"network", "detach", id});
    NetworkNodeFixture::TearDownTestSuite();
  }

  // The address `container` (a name) has on `network`, from `nodectl network inspect`.
  static std::string AddressOf(const std::string& network, const std::string& container) {
    CommandResult r = Nodectl({"network", "inspect", network});
    size_t at = r.out.find(absl::StrCat("\"container_name\": \"", container, "\""));
    if (at == std::string::npos) return "";
    size_t ip = r.out.find("\"ip_address\": \"", at);
    if (ip == std::string::npos) return "";
    ip += 15;
    return r.out.substr(ip, r.out.find('"', ip) - ip);
  }

  // Endpoints the default network holds, from `nodectl network inspect bridge`.
  static int EndpointsOnDefaultNetwork() {
    CommandResult r = Nodectl({"network", "inspect", "bridge"});
    int count = 0;
    for (size_t at = r.out.find("\"container_id\""); at != std::string::npos;
         at = r.out.find("\"container_id\"", at + 1)) {
      ++count;
    }
    return count;
  }

  static std::string Inspect(const std::string& container) {
    return Nodectl({"inspect", container}).out;
  }
};

TEST_F(NetworkE2E, CreateListInspectRemove) {
  CommandResult created = Nodectl({"network", "create", "e2e-front"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(absl::StripTrailingAsciiWhitespace(created.out).size(), 64u);
  CommandResult ls = Nodectl({"network", "ls"});
  EXPECT_THAT(ls.out, HasSubstr("e2e-front"));
  EXPECT_THAT(ls.out, HasSubstr("SUBNET"));
  CommandResult inspect = Nodectl({"network", "inspect", "e2e-front"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("\"subnet\": \"10."));
  EXPECT_THAT(inspect.out, HasSubstr(absl::StrCat("\"bridge\": \"", names_.bridge_prefix)));
  EXPECT_EQ(HostLinksWithPrefix(names_.bridge_prefix).size(), 1u);

  CommandResult dup = Nodectl({"network", "create", "e2e-front"});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_THAT(dup.err, HasSubstr("exists"));
  CommandResult bad = Nodectl({"network", "create", "--subnet", "10.213.0.0/33", "e2e-bad"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("bad prefix length"));

  // Refused while a container is attached (here through the runtime's plumbing call).
  ASSERT_EQ(Nodectl({"network", "attach", "plumb1", "--network", "e2e-front"}).exit_code, 0);
  CommandResult busy = Nodectl({"network", "rm", "e2e-front"});
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_THAT(busy.err, HasSubstr("attached"));
  ASSERT_EQ(Nodectl({"network", "detach", "plumb1"}).exit_code, 0);

  CommandResult rm = Nodectl({"network", "rm", "e2e-front"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_THAT(Nodectl({"network", "ls"}).out, Not(HasSubstr("e2e-front")));
  EXPECT_THAT(HostLinksWithPrefix(names_.bridge_prefix), IsEmpty());
  EXPECT_EQ(Nodectl({"network", "rm", "e2e-front"}).exit_code, 1);
}

TEST_F(NetworkE2E, ContainersTalkByNameAndAddressAndNetworksAreIsolated) {
  ASSERT_EQ(Nodectl({"network", "create", "e2e-app"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "create", "e2e-other"}).exit_code, 0);
  std::string web = RunDetached({"--name", "e2e-web", "--hostname", "web1", "--network", "e2e-app",
                                 "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"});
  std::string ip = AddressOf("e2e-app", "e2e-web");
  ASSERT_FALSE(ip.empty());
  const std::string get = "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ";
  // By name and by address, retrying while httpd starts.
  const std::string retry =
      "for i in $(seq 50); do out=$(%s) && [ -n \"$out\" ] && "
      "{ echo \"$out\"; exit 0; }; sleep 0.1; done; exit 1";
  CommandResult by_name =
      Sh(absl::StrReplaceAll(retry, {{"%s", get + "e2e-web 80"}}), {"--network", "e2e-app"});
  EXPECT_EQ(by_name.exit_code, 0) << by_name.out << by_name.err;
  EXPECT_THAT(by_name.out, HasSubstr("web1"));
  CommandResult by_ip =
      Sh(absl::StrReplaceAll(retry, {{"%s", get + ip + " 80"}}), {"--network", "e2e-app"});
  EXPECT_THAT(by_ip.out, HasSubstr("web1"));
  // The container sees its own eth0, address and default route, and its peers' names.
  CommandResult inside = Sh("ip -4 -o addr show eth0; ip route; cat /etc/hosts",
                            {"--name", "e2e-peek", "--network", "e2e-app"});
  EXPECT_THAT(inside.out, HasSubstr("default via"));
  EXPECT_THAT(inside.out, HasSubstr(ip + "\te2e-web web1"));
  // Another network reaches neither the name nor the address.
  CommandResult other =
      Sh(get + ip + " 80; getent hosts e2e-web || echo no-name", {"--network", "e2e-other"});
  EXPECT_THAT(other.out, Not(HasSubstr("web1")));
  EXPECT_THAT(other.out, HasSubstr("no-name"));

  EXPECT_EQ(Nodectl({"rm", "-f", web}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(Nodectl({"network", "rm", "e2e-app", "e2e-other"}).exit_code, 0);
}

TEST_F(NetworkE2E, PublishedPortOnLoopbackAndRulesGoWithTheContainer) {
  int port = FreeLoopbackPort();
  std::string id = RunDetached({"--name", "e2e-pub", "--hostname", "pub1", "-p",
                                absl::StrCat("127.0.0.1:", port, ":80"), "busybox", "httpd", "-f",
                                "-p", "80", "-h", "/etc"});
  EXPECT_THAT(HttpGetLoopback(port, 10s), HasSubstr("pub1"));
  CommandResult table = RunCommand({"nft", "list", "table", "ip", names_.nft_table});
  EXPECT_THAT(table.out, HasSubstr(absl::StrCat("tcp dport ", port, " dnat to")));
  EXPECT_THAT(table.out, HasSubstr("masquerade"));
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
  table = RunCommand({"nft", "list", "table", "ip", names_.nft_table});
  EXPECT_THAT(table.out, Not(HasSubstr("dnat")));
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(HttpGetLoopback(port, 0ms), "");
}

TEST_F(NetworkE2E, RunJoinsTheDefaultBridgeAndGivesTheEndpointBack) {
  // Like Docker: no --network means the default bridge network, made on first use.
  CommandResult inside =
      Sh("ip -4 -o addr show eth0; ip route; cat /etc/hostname", {"--hostname", "dflt1"});
  ASSERT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_THAT(inside.out, HasSubstr("inet 10."));
  EXPECT_THAT(inside.out, HasSubstr("default via"));
  EXPECT_THAT(inside.out, HasSubstr("dflt1\n"));
  EXPECT_THAT(Nodectl({"network", "ls"}).out, HasSubstr("bridge"));
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 0);

  // --network none: loopback only, and nothing asked of the network service.
  CommandResult none =
      Sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", {"--network", "none"});
  EXPECT_EQ(none.out, "lo\n");
  CommandResult no_ports =
      Nodectl({"run", "--rm", "--network", "none", "-p", "8080:80", "busybox", "true"});
  EXPECT_EQ(no_ports.exit_code, 125);
  EXPECT_THAT(no_ports.err, HasSubstr("published ports need a bridge network"));
  CommandResult bad_port = Nodectl({"run", "--rm", "-p", "8080:99999", "busybox", "true"});
  EXPECT_EQ(bad_port.exit_code, 125);
  EXPECT_THAT(bad_port.err, HasSubstr("99999"));
  CommandResult no_net = Nodectl({"run", "--rm", "--network", "e2e-nope", "busybox", "true"});
  EXPECT_EQ(no_net.exit_code, 125);
  EXPECT_THAT(no_net.err, HasSubstr("e2e-nope"));
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
}

TEST_F(NetworkE2E, StopGivesTheAddressBackAndStartGetsANewEndpoint) {
  std::string id = RunDetached({"--name", "e2e-cycle", "busybox", "sleep", "1000"});
  EXPECT_EQ(HostLinksWithPrefix(names_.veth_prefix).size(), 1u);
  EXPECT_THAT(Inspect(id), HasSubstr("\"network_settings\""));
  ASSERT_EQ(Nodectl({"stop", "-t", "0", id}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 0);
  EXPECT_THAT(Inspect(id), Not(HasSubstr("\"network_settings\"")));
  ASSERT_EQ(Nodectl({"start", id}).exit_code, 0);
  EXPECT_EQ(HostLinksWithPrefix(names_.veth_prefix).size(), 1u);
  EXPECT_THAT(Inspect(id), HasSubstr("\"ip_address\": \"10."));
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 0);
}

TEST_F(NetworkE2E, FailedStartLeavesNoEndpoint) {
  CommandResult missing = Nodectl({"run", "--rm", "busybox", "/no/such/command"});
  EXPECT_EQ(missing.exit_code, 127) << missing.err;
  CommandResult created = Nodectl({"create", "--name", "e2e-fail", "busybox", "/no/such/cmd"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(Nodectl({"start", "e2e-fail"}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 0);
  EXPECT_EQ(Nodectl({"rm", "e2e-fail"}).exit_code, 0);
}

TEST_F(NetworkE2E, RuntimeKilledWhileAContainerExitsStillGivesItsEndpointBack) {
  std::string keeper = RunDetached({"--name", "e2e-keeper", "busybox", "sleep", "1000"});
  std::string quitter = RunDetached({"--name", "e2e-quitter", "busybox", "sleep", "1000"});
  ASSERT_EQ(HostLinksWithPrefix(names_.veth_prefix).size(), 2u);
  int quitter_pid = 0;
  std::string quitter_state = Inspect(quitter);
  size_t at = quitter_state.find("\"pid\": ");
  ASSERT_NE(at, std::string::npos);
  quitter_pid = std::atoi(quitter_state.c_str() + at + 7);
  ASSERT_GT(quitter_pid, 1);
  int runtime_pid = std::atoi(ReadText(RunDir() + "/runtime.pid").c_str());
  ASSERT_GT(runtime_pid, 1);
  ASSERT_EQ(kill(runtime_pid, SIGKILL), 0);
  ASSERT_EQ(kill(quitter_pid, SIGKILL), 0);
  for (int i = 0; i < 500 && kill(quitter_pid, 0) == 0; ++i) std::this_thread::sleep_for(10ms);
  CommandResult up = Nodectl({"up", "--root", base_ + "/state", "--log-dir", base_ + "/log",
                              "--metrics-address", "", "--cgroup-parent", cgroup_parent_});
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  // The restarted runtime finds the exit and gives the endpoint back; the keeper keeps its.
  EXPECT_EQ(Nodectl({"wait", quitter}).out, "137\n");
  EXPECT_EQ(HostLinksWithPrefixOnceReaped(names_.veth_prefix, 1).size(), 1u);
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 1);
  EXPECT_THAT(Inspect(keeper), HasSubstr("\"ip_address\": \"10."));
  EXPECT_EQ(Nodectl({"rm", "-f", keeper, quitter}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 0);
}

TEST_F(NetworkE2E, NetworkServiceKilledWhileAContainerExitsGetsTheEndpointBackLater) {
  std::string quitter = RunDetached({"--name", "e2e-orphan", "busybox", "sleep", "1000"});
  int quitter_pid = std::atoi(InspectField(quitter, "pid").c_str());
  ASSERT_GT(quitter_pid, 1);
  int network_pid = std::atoi(ReadText(RunDir() + "/network.pid").c_str());
  ASSERT_GT(network_pid, 1);
  ASSERT_EQ(kill(network_pid, SIGKILL), 0);
  // The container ends while nobody can take its endpoint back.
  ASSERT_EQ(kill(quitter_pid, SIGKILL), 0);
  EXPECT_EQ(Nodectl({"wait", quitter}).out, "137\n");
  CommandResult up = Nodectl({"up", "--root", base_ + "/state", "--log-dir", base_ + "/log",
                              "--metrics-address", "", "--cgroup-parent", cgroup_parent_});
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  // The runtime retries the detach once the service is back.
  for (int i = 0; i < 200 && !HostLinksWithPrefix(names_.veth_prefix).empty(); ++i) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(EndpointsOnDefaultNetwork(), 0);
  EXPECT_THAT(Inspect(quitter), Not(HasSubstr("\"network_settings\"")));
  EXPECT_EQ(Nodectl({"rm", quitter}).exit_code, 0);
}

}  // namespace
}  // namespace nodeagent::testing
