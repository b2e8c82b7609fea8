// End-to-end: user namespaces (--userns=private, --uidmap/--gidmap) through nodectl against a
// node of the test's own. Root inside maps to an unprivileged host range; the image's layers
// are id-mapped, the container's upper belongs to the mapped range.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

class UsernsE2E : public NodeFixture {
 protected:
  // The first host id of the container's uid map, from `nodectl inspect`.
  static uint32_t HostRoot(const std::string& container) {
    CommandResult inspect = Nodectl({"inspect", container});
    size_t at = inspect.out.find("\"uid_mappings\"");
    if (at == std::string::npos) return 0;
    at = inspect.out.find("\"host_id\": ", at);
    if (at == std::string::npos) return 0;
    uint32_t id = 0;
    std::string rest = inspect.out.substr(at + 11, 12);
    (void)absl::SimpleAtoi(rest.substr(0, rest.find_first_of(",\n ")), &id);
    return id;
  }
  static std::string Id(const std::string& container) {
    CommandResult inspect = Nodectl({"inspect", container});
    size_t at = inspect.out.find("\"id\": \"");
    return at == std::string::npos ? "" : inspect.out.substr(at + 7, 64);
  }
};

TEST_F(UsernsE2E, PrivateRangeRootInsideUnprivilegedOutside) {
  CommandResult run =
      Nodectl({"run", "-d", "--name", "u1", "--userns=private", "busybox", "sh", "-c",
               "echo hi > /newfile && echo more >> /etc/passwd && sleep 600"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  uint32_t root = HostRoot("u1");
  ASSERT_GE(root, 100000u) << Nodectl({"inspect", "u1"}).out;
  EXPECT_EQ((root - 100000) % 65536, 0u);
  CommandResult inside = Nodectl({"exec", "u1", "sh", "-c",
                                  "id -u; cat /proc/self/uid_map; stat -c %u /bin/busybox; "
                                  "i=0; while [ ! -e /newfile ] && [ $i -lt 100 ]; do "
                                  "sleep 0.05; i=$((i+1)); done; cat /newfile"});
  ASSERT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_THAT(inside.out, ContainsRegex(absl::StrCat("^0\n +0 +", root, " +65536\n0\nhi\n$")));
  // /sys shows the container's network namespace (its devices are those of /proc/net/dev),
  // not the host's: node-shim mounted it from inside that namespace.
  CommandResult net = Nodectl({"exec", "u1", "sh", "-c",
                               "ls /sys/class/net | sort | tr '\\n' ' '; echo; "
                               "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | "
                               "tr '\\n' ' '; echo"});
  ASSERT_EQ(net.exit_code, 0) << net.err;
  size_t nl = net.out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(net.out.substr(0, nl + 1), net.out.substr(nl + 1)) << net.out;
  EXPECT_THAT(net.out, HasSubstr("lo "));
  // On the host the container's files belong to the mapped range.
  std::string upper = absl::StrCat(ImageRoot(), "/snapshots/", Id("u1"), "/upper");
  struct stat st;
  ASSERT_EQ(stat((upper + "/newfile").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, root);
  EXPECT_EQ(st.st_gid, root);
  ASSERT_EQ(stat((upper + "/etc/passwd").c_str(), &st), 0);  // Copied up from the image.
  EXPECT_EQ(st.st_uid, root);
  // The container's processes run as the mapped uid on the host.
  CommandResult pid = Nodectl({"inspect", "u1"});
  size_t at = pid.out.find("\"pid\": ");
  ASSERT_NE(at, std::string::npos);
  int host_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(pid.out.substr(at + 7, pid.out.find_first_of(",\n", at) - at - 7),
                               &host_pid));
  EXPECT_THAT(ReadText(absl::StrCat("/proc/", host_pid, "/status")),
              ContainsRegex(absl::StrCat("Uid:\t", root, "\t")));
  // A second private container gets a range of its own.
  CommandResult second =
      Nodectl({"run", "-d", "--name", "u2", "--userns=private", "busybox", "sleep", "600"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  uint32_t other = HostRoot("u2");
  EXPECT_GE(other, 100000u);
  EXPECT_TRUE(other >= root + 65536 || other + 65536 <= root) << root << " " << other;
  EXPECT_EQ(Nodectl({"rm", "-f", "u1", "u2"}).exit_code, 0);
}

// What a user namespace container wrote is owned by mapped host ids in its upper; commit and
// export give the container's own ids back, as they are seen inside.
TEST_F(UsernsE2E, CommitAndExportRecordTheContainersOwnIds) {
  CommandResult run = Nodectl({"run", "--name", "u3", "--userns=private", "busybox", "sh", "-c",
                               "echo hi > /made && mkdir /d && touch /d/f && chown 1000:1001 /d/f "
                               "&& touch /etc/hostname-x"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_GE(HostRoot("u3"), 100000u);
  CommandResult commit = Nodectl({"commit", "u3", "e2e-userns-commit:v1"});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  // Read back without a user namespace: ids as the image records them.
  CommandResult owners = Nodectl({"run", "--rm", "--network", "none", "e2e-userns-commit:v1",
                                  "stat", "-c", "%n %u:%g", "/made", "/d", "/d/f", "/etc"});
  ASSERT_EQ(owners.exit_code, 0) << owners.err;
  EXPECT_EQ(owners.out, "/made 0:0\n/d 0:0\n/d/f 1000:1001\n/etc 0:0\n");
  std::string tar = base_ + "/u3-export.tar";
  ASSERT_EQ(Nodectl({"export", "u3", "-o", tar}).exit_code, 0);
  CommandResult listed =
      RunCommand({"tar", "--numeric-owner", "-tvf", tar, "made", "d/f", "bin/sh"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, ContainsRegex("0/0 .* made\n"));
  EXPECT_THAT(listed.out, ContainsRegex("1000/1001 .* d/f\n"));
  EXPECT_THAT(listed.out, ContainsRegex("0/0 .* bin/sh"));
  EXPECT_EQ(Nodectl({"rm", "u3"}).exit_code, 0);
  EXPECT_EQ(Nodectl({"rmi", "e2e-userns-commit:v1"}).exit_code, 0);
}

TEST_F(UsernsE2E, ExplicitMapsAndBadMapsAreClearErrors) {
  CommandResult run = Nodectl({"run", "--rm", "--uidmap", "0:200000:65536", "busybox", "sh", "-c",
                               "cat /proc/self/uid_map /proc/self/gid_map; touch /x && echo ok"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, ContainsRegex("^ +0 +200000 +65536\n +0 +200000 +65536\nok\n$"));
  struct Case {
    std::vector<std::string> flags;
    const char* error;
  };
  for (const Case& c :
       std::vector<Case>{{{"--uidmap", "0:1"}, "CONTAINER:HOST:SIZE"},
                         {{"--userns", "sometimes"}, "sometimes"},
                         {{"--uidmap", "0:200000:10", "--uidmap", "5:300000:10"}, "overlaps"},
                         {{"--userns", "private", "--uidmap", "0:200000:10"}, "do not go together"},
                         {{"--uidmap", "0:4294967000:65536"}, "2^32"}}) {
    std::vector<std::string> args = {"run", "--rm"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    args.insert(args.end(), {"busybox", "true"});
    CommandResult bad = Nodectl(args);
    EXPECT_EQ(bad.exit_code, 125) << c.error;
    EXPECT_THAT(bad.err, HasSubstr(c.error));
  }
  EXPECT_EQ(Nodectl({"ps", "-a", "-q"}).out, "");
  EXPECT_EQ(RunCommand({"ls", "-A", RuntimeRoot() + "/containers"}).out, "");
}

}  // namespace
}  // namespace nodeagent::testing
