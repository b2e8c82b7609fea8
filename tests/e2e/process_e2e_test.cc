// End-to-end: exec, stdin, --init and --prompt, hardening defaults and namespace modes,
// through nodectl against a node of the test's own.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ProcessE2E : public NodeFixture {
 protected:
};

TEST_F(ProcessE2E, ExecJoinsTheContainer) {
  std::string id =
      RunDetached({"--name", "target", "--hostname", "inside", "busybox", "sleep", "600"});
  CommandResult exec =
      Nodectl({"exec", "target", "sh", "-c", "hostname; ps -o comm | grep -c sleep; exit 6"});
  EXPECT_EQ(exec.exit_code, 6) << exec.err;
  EXPECT_EQ(exec.out, "inside\n1\n");
  CommandResult env =
      Nodectl({"exec", "-e", "FOO=bar", "-w", "/tmp", "target", "sh", "-c", "echo $FOO; pwd"});
  EXPECT_EQ(env.out, "bar\n/tmp\n") << env.err;
  CommandResult piped = Nodectl({"exec", "-i", "target", "cat"}, "through stdin\n");
  EXPECT_EQ(piped.out, "through stdin\n") << piped.err;
  CommandResult missing = Nodectl({"exec", "target", "no-such-command"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_THAT(missing.err, HasSubstr("executable file not found"));
  EXPECT_EQ(Nodectl({"stop", "-t", "0", "target"}).exit_code, 0);
  CommandResult stopped = Nodectl({"exec", "target", "true"});
  EXPECT_EQ(stopped.exit_code, 125);
  EXPECT_THAT(stopped.err, HasSubstr("is not running"));
  EXPECT_EQ(Nodectl({"rm", id}).exit_code, 0);
  // The exec left no directory behind in the (removed) bundle, nor anything else.
  EXPECT_EQ(RunCommand({"ls", "-A", RuntimeRoot() + "/containers"}).out, "");
}

TEST_F(ProcessE2E, InteractiveRunReadsStdin) {
  CommandResult run = Nodectl({"run", "-i", "--rm", "busybox", "sh"}, "echo from-stdin; exit 3\n");
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(run.out, "from-stdin\n");
}

TEST_F(ProcessE2E, InitReapsAndSetsThePrompt) {
  // The seed exercise's init: PID 1 is the init, the shell its child, PS1 set.
  CommandResult run = Nodectl({"run", "-i", "--rm", "--init", "--prompt", "c1> ", "busybox", "sh"},
                              "echo \"[$PS1]\" pid=$$; exit 0\n");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("[c1> ] pid=2"));
  // A zombie left by an orphaned grandchild is reaped by the init.
  CommandResult zombies = Nodectl({"run", "--rm", "--init", "busybox", "sh", "-c",
                                   "(sleep 0.2 &) ; sleep 1; ps -o stat | grep -c Z; true"});
  EXPECT_EQ(zombies.out, "0\n") << zombies.err;
}

TEST_F(ProcessE2E, HardenedByDefault) {
  CommandResult caps = Nodectl({"run", "--rm", "busybox", "grep", "CapEff", "/proc/self/status"});
  EXPECT_THAT(caps.out, HasSubstr("00000000a80425fb")) << "Docker's default capability set";
  CommandResult none = Nodectl(
      {"run", "--rm", "--cap-drop", "ALL", "busybox", "grep", "CapEff", "/proc/self/status"});
  EXPECT_THAT(none.out, HasSubstr("0000000000000000"));
  CommandResult blocked =
      Nodectl({"run", "--rm", "busybox", "sh", "-c",
               "mount -t tmpfs x /tmp 2>/dev/null || echo mount-refused; "
               "unshare -U true 2>&1 || echo unshare-refused; "
               "grep NoNewPrivs /proc/self/status; "
               "head -c1 /proc/kcore | wc -c; "
               "echo 1 > /proc/sys/kernel/panic_on_oops 2>/dev/null || echo ro-sys"});
  EXPECT_THAT(blocked.out, HasSubstr("mount-refused"));
  EXPECT_THAT(blocked.out, HasSubstr("unshare-refused"));
  EXPECT_THAT(blocked.out, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(blocked.out, HasSubstr("0\n"));  // /proc/kcore is masked.
  EXPECT_THAT(blocked.out, HasSubstr("ro-sys"));
  CommandResult privileged = Nodectl({"run", "--rm", "--privileged", "busybox", "sh", "-c",
                                      "mount -t tmpfs x /tmp && echo mounted"});
  EXPECT_EQ(privileged.out, "mounted\n") << privileged.err;
  // No descriptor of the host side reaches the container: ls's own directory fd is the 4th.
  CommandResult fds = Nodectl({"run", "--rm", "busybox", "ls", "/proc/self/fd"});
  EXPECT_EQ(fds.out, "0\n1\n2\n3\n");
  CommandResult readonly = Nodectl({"run", "--rm", "--read-only", "busybox", "sh", "-c",
                                    "touch /x 2>/dev/null && echo writable || echo read-only"});
  EXPECT_EQ(readonly.out, "read-only\n");
  CommandResult user = Nodectl({"run", "--rm", "-u", "1000:1000", "busybox", "id"});
  EXPECT_EQ(user.out, "uid=1000 gid=1000\n") << user.err;
}

TEST_F(ProcessE2E, NamespaceModes) {
  // --network host: the very namespace the host has (compared by inode, as lsns does).
  CommandResult host_net =
      Nodectl({"run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net"});
  char own[128] = {};
  ASSERT_GT(readlink("/proc/self/ns/net", own, sizeof(own) - 1), 0);
  EXPECT_EQ(host_net.out, absl::StrCat(own, "\n")) << host_net.err;
  CommandResult none =
      Nodectl({"run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net"});
  EXPECT_EQ(none.out, "lo\n");
  // IPC objects (here a POSIX message queue; busybox-static has no ipcmk) are shared under
  // --ipc container: and private otherwise: the mqueue fs belongs to the IPC namespace.
  std::string owner = RunDetached({"--name", "ipcowner", "--ipc", "shareable", "busybox", "sh",
                                   "-c", "touch /dev/mqueue/nodeagent-q && sleep 600"});
  std::string shared;
  for (int i = 0; i < 100 && shared.empty(); ++i) {
    shared =
        Nodectl({"run", "--rm", "--ipc", "container:ipcowner", "busybox", "ls", "/dev/mqueue"}).out;
  }
  EXPECT_EQ(shared, "nodeagent-q\n");
  CommandResult isolated = Nodectl({"run", "--rm", "busybox", "ls", "/dev/mqueue"});
  EXPECT_EQ(isolated.out, "");
  CommandResult bad = Nodectl({"run", "--rm", "--ipc", "container:nope", "busybox", "true"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("no such container: nope"));
  EXPECT_EQ(Nodectl({"rm", "-f", owner}).exit_code, 0);
}

}  // namespace
}  // namespace nodeagent::testing
