// `nodectl network connect` / `disconnect` end to end, against a node of the test's own: a
// running container gets one more interface (eth1) in its own network namespace, reaches the
// other network's containers by name and address, every hosts file on both networks follows,
// and disconnect removes that interface alone. Containers that share a namespace the network
// service does not own (--network none, host, container:ID) are refused, as Docker refuses them.
// Traffic stays between the test's own namespaces.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/network/core/network_manager.h"
#include "tests/e2e/network_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class NetworkConnectE2E : public NetworkNodeFixture {
 protected:
  static CommandResult Exec(const std::string& container, const std::string& script) {
    return Nodectl({"exec", container, "sh", "-c", script});
  }
};

TEST_F(NetworkConnectE2E, ConnectAndDisconnectARunningContainer) {
  ASSERT_EQ(Nodectl({"network", "create", "e2e-cfront"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "create", "e2e-cback"}).exit_code, 0);
  std::string web =
      RunDetached({"--name", "e2e-cweb", "--network", "e2e-cfront", "busybox", "sleep", "1000"});
  std::string db = RunDetached({"--name", "e2e-cdb", "--hostname", "db1", "--network", "e2e-cback",
                                "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"});
  ASSERT_FALSE(web.empty());
  ASSERT_FALSE(db.empty());
  const std::string get_db =
      "for i in $(seq 50); do out=$(printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | "
      "nc -w 2 e2e-cdb 80) && [ -n \"$out\" ] && { echo \"$out\"; exit 0; }; sleep 0.1; done; "
      "exit 1";
  // Before: db is neither named nor reachable from web.
  EXPECT_THAT(Exec("e2e-cweb", "getent hosts e2e-cdb || echo no-name").out, HasSubstr("no-name"));

  CommandResult connect = Nodectl({"network", "connect", "e2e-cback", "e2e-cweb"});
  ASSERT_EQ(connect.exit_code, 0) << connect.err;
  CommandResult inside = Exec("e2e-cweb", "ip -4 -o addr show; ip route show default");
  EXPECT_THAT(inside.out, HasSubstr("eth0"));
  EXPECT_THAT(inside.out, HasSubstr("eth1"));
  EXPECT_THAT(inside.out, HasSubstr("dev eth0"));  // The first network keeps the default route.
  CommandResult reached = Exec("e2e-cweb", get_db);
  EXPECT_EQ(reached.exit_code, 0) << reached.out << reached.err;
  EXPECT_THAT(reached.out, HasSubstr("db1"));
  // db's hosts file (bind-mounted, rewritten in place) names web now.
  EXPECT_THAT(Exec("e2e-cdb", "cat /etc/hosts").out, HasSubstr("e2e-cweb"));
  EXPECT_THAT(Nodectl({"network", "inspect", "e2e-cback"}).out, HasSubstr("\"eth1\""));
  // Twice is fine.
  EXPECT_EQ(Nodectl({"network", "connect", "e2e-cback", "e2e-cweb"}).exit_code, 0);

  CommandResult disconnect = Nodectl({"network", "disconnect", "e2e-cback", web.substr(0, 12)});
  ASSERT_EQ(disconnect.exit_code, 0) << disconnect.err;
  EXPECT_THAT(Exec("e2e-cweb", "cat /proc/net/dev").out, Not(HasSubstr("eth1")));
  EXPECT_THAT(Exec("e2e-cweb", "cat /etc/hosts").out, Not(HasSubstr("e2e-cdb")));
  EXPECT_THAT(Exec("e2e-cdb", "cat /etc/hosts").out, Not(HasSubstr("e2e-cweb")));
  EXPECT_THAT(Exec("e2e-cweb", "ip -4 -o addr show eth0").out, HasSubstr("inet 10."));
  CommandResult again = Nodectl({"network", "disconnect", "e2e-cback", "e2e-cweb"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("not connected"));

  EXPECT_EQ(Nodectl({"rm", "-f", web, db}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(Nodectl({"network", "rm", "e2e-cfront", "e2e-cback"}).exit_code, 0);
}

// As with Docker, a network connected to a container stays connected across stop and start;
// one disconnected before the stop does not come back.
TEST_F(NetworkConnectE2E, ConnectedNetworksComeBackAfterStopAndStart) {
  ASSERT_EQ(Nodectl({"network", "create", "e2e-kfront"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "create", "e2e-kback"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "create", "e2e-kgone"}).exit_code, 0);
  std::string web =
      RunDetached({"--name", "e2e-kweb", "--network", "e2e-kfront", "busybox", "sleep", "1000"});
  ASSERT_EQ(Nodectl({"network", "connect", "e2e-kback", "e2e-kweb"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "connect", "e2e-kgone", "e2e-kweb"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "disconnect", "e2e-kgone", "e2e-kweb"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"stop", "-t", "0", "e2e-kweb"}).exit_code, 0);
  EXPECT_THAT(Nodectl({"network", "inspect", "e2e-kback"}).out, Not(HasSubstr("e2e-kweb")));

  CommandResult start = Nodectl({"start", "e2e-kweb"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  CommandResult inside = Exec("e2e-kweb", "cat /proc/net/dev; ip route show default");
  EXPECT_THAT(inside.out, HasSubstr("eth0"));
  EXPECT_THAT(inside.out, HasSubstr("eth1"));
  EXPECT_THAT(inside.out, Not(HasSubstr("eth2")));
  EXPECT_THAT(inside.out, HasSubstr("dev eth0"));
  EXPECT_THAT(Nodectl({"network", "inspect", "e2e-kback"}).out, HasSubstr("\"eth1\""));
  EXPECT_THAT(Nodectl({"network", "inspect", "e2e-kgone"}).out, Not(HasSubstr("e2e-kweb")));

  // A connected network removed while the container is stopped: the start says which.
  ASSERT_EQ(Nodectl({"stop", "-t", "0", "e2e-kweb"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"network", "rm", "e2e-kback"}).exit_code, 0);
  CommandResult failed = Nodectl({"start", "e2e-kweb"});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_THAT(failed.err, HasSubstr("e2e-kback"));
  EXPECT_THAT(Nodectl({"network", "inspect", "e2e-kfront"}).out, Not(HasSubstr("e2e-kweb")));

  EXPECT_EQ(Nodectl({"rm", "-f", web}).exit_code, 0);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(Nodectl({"network", "rm", "e2e-kfront", "e2e-kgone"}).exit_code, 0);
}

TEST_F(NetworkConnectE2E, RefusesContainersWithoutANamespaceOfTheService) {
  ASSERT_EQ(Nodectl({"network", "create", "e2e-cref"}).exit_code, 0);
  std::string none =
      RunDetached({"--name", "e2e-cnone", "--network", "none", "busybox", "sleep", "1000"});
  CommandResult refused = Nodectl({"network", "connect", "e2e-cref", "e2e-cnone"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("cannot be connected"));
  CommandResult missing = Nodectl({"network", "connect", "e2e-cref", "e2e-no-such-container"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("e2e-no-such-container"));
  CommandResult no_net = Nodectl({"network", "connect", "e2e-no-such-net", "e2e-cnone"});
  EXPECT_EQ(no_net.exit_code, 1);
  EXPECT_THAT(HostLinksWithPrefixOnceReaped(names_.veth_prefix), IsEmpty());
  EXPECT_EQ(Nodectl({"rm", "-f", none}).exit_code, 0);
  EXPECT_EQ(Nodectl({"network", "rm", "e2e-cref"}).exit_code, 0);
}

}  // namespace
}  // namespace nodeagent::testing
