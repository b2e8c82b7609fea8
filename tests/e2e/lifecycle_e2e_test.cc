// End-to-end lifecycle: stop, pause/unpause, introspection (ns, mounts) and restart survival
// of the runtime service, through nodectl against a node of the test's own.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class LifecycleE2E : public NodeFixture {
 protected:
  static int LogLines(const std::string& container) {
    CommandResult logs = Nodectl({"logs", container});
    return static_cast<int>(std::count(logs.out.begin(), logs.out.end(), '\n'));
  }
};

TEST_F(LifecycleE2E, StopUsesTheStopSignalFirst) {
  std::string id =
      RunDetached({"busybox", "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 1; done"});
  auto start = std::chrono::steady_clock::now();
  CommandResult stop = Nodectl({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(Nodectl({"wait", id}).out, "42\n");
  EXPECT_EQ(Nodectl({"stop", id}).exit_code, 0) << "stopping a stopped container succeeds";
  EXPECT_EQ(Nodectl({"rm", id}).exit_code, 0);
}

TEST_F(LifecycleE2E, StopKillsAfterTheGracePeriod) {
  // sleep as PID 1 has no TERM handler, so the kernel drops SIGTERM: only SIGKILL ends it.
  std::string id = RunDetached({"busybox", "sleep", "600"});
  auto start = std::chrono::steady_clock::now();
  CommandResult stop = Nodectl({"stop", "-t", "1", id});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(6));
  EXPECT_EQ(Nodectl({"wait", id}).out, "137\n");
  EXPECT_EQ(Nodectl({"rm", id}).exit_code, 0);
}

TEST_F(LifecycleE2E, PauseFreezesAndUnpauseThaws) {
  std::string id =
      RunDetached({"busybox", "sh", "-c", "while :; do echo tick; usleep 20000; done"});
  // Wait for output to flow before pausing.
  for (int i = 0; i < 200 && LogLines(id) < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(Nodectl({"pause", id}).exit_code, 0);
  EXPECT_EQ(InspectField(id, "state"), "CONTAINER_STATE_PAUSED");
  EXPECT_THAT(Nodectl({"ps"}).out, HasSubstr("Paused"));
  int frozen = LogLines(id);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // The window being measured.
  EXPECT_EQ(LogLines(id), frozen) << "a paused container produced output";
  CommandResult again = Nodectl({"pause", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("already paused"));
  ASSERT_EQ(Nodectl({"unpause", id}).exit_code, 0);
  for (int i = 0; i < 200 && LogLines(id) <= frozen; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GT(LogLines(id), frozen);
  EXPECT_EQ(InspectField(id, "state"), "CONTAINER_STATE_RUNNING");
  // A paused container can be removed by force (SIGKILL needs a thaw to land).
  ASSERT_EQ(Nodectl({"pause", id}).exit_code, 0);
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
}

TEST_F(LifecycleE2E, NamespacesByInodeLikeLsns) {
  std::string id = RunDetached({"busybox", "sleep", "600"});
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(InspectField(id, "pid"), &pid));
  CommandResult ns = Nodectl({"ns", id});
  ASSERT_EQ(ns.exit_code, 0) << ns.err;
  for (const char* type : {"mnt", "net", "pid", "uts", "ipc", "cgroup", "user"}) {
    char link[128] = {};
    std::string path = absl::StrCat("/proc/", pid, "/ns/", type);
    ASSERT_GT(readlink(path.c_str(), link, sizeof(link) - 1), 0) << path;
    EXPECT_THAT(ns.out, HasSubstr(link)) << type;  // "mnt:[4026532417]", read independently.
  }
  std::vector<std::string> lines = absl::StrSplit(ns.out, '\n');
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "user ")) {
      EXPECT_THAT(line, HasSubstr("host"));
    }
    if (absl::StartsWith(line, "pid ") || absl::StartsWith(line, "mnt ")) {
      EXPECT_THAT(line, HasSubstr("own"));
    }
  }
  // A host PID works too: the test's own process shares everything with the host.
  CommandResult self = Nodectl({"ns", std::to_string(getpid())});
  EXPECT_EQ(self.exit_code, 0) << self.err;
  EXPECT_THAT(self.out, HasSubstr("mnt"));
  CommandResult gone = Nodectl({"ns", "no-such-container"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.err, HasSubstr("no such container"));
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
}

TEST_F(LifecycleE2E, MountsWithPropagation) {
  std::string id = RunDetached({"busybox", "sleep", "600"});
  CommandResult mounts = Nodectl({"mounts", id});
  ASSERT_EQ(mounts.exit_code, 0) << mounts.err;
  EXPECT_THAT(mounts.out, AllOf(HasSubstr("PROPAGATION"), HasSubstr("overlay"), HasSubstr("proc"),
                                HasSubstr("sysfs"), HasSubstr("/dev/pts")));
  // Nothing of the host's tree is visible: no host mount point appears in the container.
  EXPECT_THAT(mounts.out, ::testing::Not(HasSubstr(base_)));
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
  CommandResult stopped = Nodectl({"mounts", id});
  EXPECT_NE(stopped.exit_code, 0);
}

TEST_F(LifecycleE2E, RuntimeRestartLosesNothing) {
  std::string survivor = RunDetached(
      {"--name", "survivor", "busybox", "sh", "-c", "echo before; while :; do sleep 1; done"});
  std::string quitter = RunDetached({"--name", "quitter", "busybox", "sh", "-c",
                                     "trap 'echo bye; exit 5' TERM; while :; do sleep 1; done"});
  int quitter_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(InspectField(quitter, "pid"), &quitter_pid));
  // An interrupted create: a container directory without a record, and its cgroup.
  std::string orphan(64, 'f');
  ASSERT_EQ(
      RunCommand({"mkdir", "-p", RuntimeRoot() + "/containers/" + orphan + "/rootfs"}).exit_code,
      0);
  std::string orphan_cgroup = absl::StrCat("/sys/fs/cgroup/pids/", cgroup_parent_, "/", orphan);
  bool made_cgroup = mkdir(orphan_cgroup.c_str(), 0755) == 0;
  // A start cut short after its cgroup was made: the container is known, its cgroup stray.
  CommandResult created = Nodectl({"create", "--name", "halfway", "busybox", "true"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string halfway = std::string(absl::StripTrailingAsciiWhitespace(created.out));
  std::string halfway_cgroup = absl::StrCat("/sys/fs/cgroup/pids/", cgroup_parent_, "/", halfway);
  ASSERT_EQ(mkdir(halfway_cgroup.c_str(), 0755), 0);

  int runtime_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripTrailingAsciiWhitespace(ReadText(RunDir() + "/runtime.pid")), &runtime_pid));
  ASSERT_EQ(kill(runtime_pid, SIGKILL), 0);
  // While the runtime is down, one container ends.
  ASSERT_EQ(kill(quitter_pid, SIGTERM), 0);
  for (int i = 0; i < 500 && kill(quitter_pid, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CommandResult up = Nodectl({"up", "--root", base_ + "/state", "--log-dir", base_ + "/log",
                              "--metrics-address", "", "--cgroup-parent", cgroup_parent_});
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;

  CommandResult ps = Nodectl({"ps", "-a"});
  EXPECT_THAT(ps.out, HasSubstr("survivor"));
  EXPECT_THAT(ps.out, HasSubstr("Exited (5)"));
  EXPECT_EQ(InspectField("survivor", "state"), "CONTAINER_STATE_RUNNING");
  EXPECT_EQ(Nodectl({"wait", "quitter"}).out, "5\n");
  EXPECT_EQ(Nodectl({"logs", "survivor"}).out, "before\n");
  EXPECT_EQ(Nodectl({"logs", "quitter"}).out, "bye\n");
  EXPECT_FALSE(Exists(RuntimeRoot() + "/containers/" + orphan));
  if (made_cgroup) {
    EXPECT_FALSE(Exists(orphan_cgroup));
  }
  EXPECT_FALSE(Exists(halfway_cgroup));
  CommandResult start = Nodectl({"start", "halfway"});
  EXPECT_EQ(start.exit_code, 0) << start.err;
  EXPECT_EQ(Nodectl({"wait", "halfway"}).out, "0\n");
  EXPECT_EQ(Nodectl({"rm", "halfway"}).exit_code, 0);
  // Still controllable.
  EXPECT_EQ(Nodectl({"kill", "survivor"}).exit_code, 0);
  EXPECT_EQ(Nodectl({"wait", "survivor"}).out, "137\n");
  EXPECT_EQ(Nodectl({"rm", "survivor", "quitter"}).exit_code, 0);
}

TEST_F(LifecycleE2E, BadLifecycleRequestsAreClearErrors) {
  CommandResult stop = Nodectl({"stop", "nope"});
  EXPECT_NE(stop.exit_code, 0);
  EXPECT_THAT(stop.err, HasSubstr("no such container: nope"));
  std::string id = RunDetached({"busybox", "true"});
  EXPECT_EQ(Nodectl({"wait", id}).out, "0\n");
  CommandResult pause = Nodectl({"pause", id});
  EXPECT_NE(pause.exit_code, 0);
  EXPECT_THAT(pause.err, HasSubstr("is not running"));
  CommandResult kill = Nodectl({"kill", id});
  EXPECT_THAT(kill.err, HasSubstr("is not running"));
  CommandResult badsig = Nodectl({"kill", "-s", "NOPE", id});
  EXPECT_THAT(badsig.err, HasSubstr("unknown signal"));
  EXPECT_EQ(Nodectl({"rm", id}).exit_code, 0);
  CommandResult limits = Nodectl({"run", "--rm", "-m", "-5m", "busybox", "true"});
  EXPECT_EQ(limits.exit_code, 125);
  EXPECT_THAT(limits.err, HasSubstr("-5m"));
  CommandResult cpus = Nodectl({"run", "--rm", "--cpus", "1000", "busybox", "true"});
  EXPECT_EQ(cpus.exit_code, 125);
  EXPECT_THAT(cpus.err, HasSubstr("1000"));
}

}  // namespace
}  // namespace nodeagent::testing

namespace nodeagent::testing {
namespace {

class MountsE2E : public NodeFixture {};

TEST_F(MountsE2E, NamedVolumeOutlivesContainersAndIsGuarded) {
  CommandResult write = Nodectl({"run", "--name", "writer", "-v", "e2edata:/data", "busybox", "sh",
                                 "-c", "echo kept > /data/f"});
  ASSERT_EQ(write.exit_code, 0) << write.err;
  CommandResult read = Nodectl({"run", "--rm", "-v", "e2edata:/data:ro", "busybox", "sh", "-c",
                                "cat /data/f; echo x > /data/g 2>/dev/null || echo read-only"});
  EXPECT_EQ(read.out, "kept\nread-only\n") << read.err;
  CommandResult ls = Nodectl({"volume", "ls"});
  EXPECT_THAT(ls.out, AllOf(HasSubstr("e2edata"), HasSubstr("writer")));
  CommandResult busy = Nodectl({"volume", "rm", "e2edata"});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_THAT(busy.err, HasSubstr("in use by writer"));
  EXPECT_EQ(Nodectl({"rm", "writer"}).exit_code, 0);
  EXPECT_EQ(Nodectl({"volume", "rm", "e2edata"}).exit_code, 0);
  EXPECT_THAT(Nodectl({"volume", "ls"}).out, ::testing::Not(HasSubstr("e2edata")));
  CommandResult bad = Nodectl({"volume", "rm", "../etc"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("invalid volume name"));
}

TEST_F(MountsE2E, BindMountsHonourReadOnly) {
  std::string dir = MakeTempDir(base_, "bind");
  std::ofstream(dir + "/hostfile") << "from host\n";
  CommandResult rw = Nodectl({"run", "--rm", "-v", dir + ":/mnt", "busybox", "sh", "-c",
                              "cat /mnt/hostfile; echo back > /mnt/fromctr"});
  EXPECT_EQ(rw.out, "from host\n") << rw.err;
  EXPECT_EQ(ReadText(dir + "/fromctr"), "back\n");
  CommandResult ro = Nodectl({"run", "--rm", "-v", dir + ":/mnt:ro", "busybox", "sh", "-c",
                              "touch /mnt/x 2>/dev/null && echo writable || echo ro"});
  EXPECT_EQ(ro.out, "ro\n");
  CommandResult missing = Nodectl({"run", "--rm", "-v", "/no/such/dir:/mnt", "busybox", "true"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("/no/such/dir"));
  EXPECT_EQ(Nodectl({"ps", "-a", "-q"}).out, "");
}

// The seed's exercise 5 as one command: memory, CPU percent and an extra mount point,
// read from the command line into one spec handed to the container.
TEST_F(MountsE2E, SeedExerciseFiveLimitsAndMypoint) {
  CommandResult run =
      Nodectl({"run", "-d", "--name", "ex5", "-m", "64m", "--cpu-percent", "50", "--mount",
               "type=tmpfs,dst=/mypoint,tmpfs-size=8m", "busybox", "sleep", "600"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::string id(absl::StripTrailingAsciiWhitespace(run.out));
  // Limits as the kernel holds them (v1 here; the path layout is the driver's).
  std::string memory =
      absl::StrCat("/sys/fs/cgroup/memory/", cgroup_parent_, "/", id, "/memory.limit_in_bytes");
  std::string quota =
      absl::StrCat("/sys/fs/cgroup/cpu/", cgroup_parent_, "/", id, "/cpu.cfs_quota_us");
  if (Exists(memory)) {
    EXPECT_EQ(ReadText(memory), "67108864\n");
    EXPECT_EQ(ReadText(quota), "50000\n");
  } else {
    std::string v2 = absl::StrCat("/sys/fs/cgroup/", cgroup_parent_, "/", id);
    EXPECT_EQ(ReadText(v2 + "/memory.max"), "67108864\n");
    EXPECT_EQ(ReadText(v2 + "/cpu.max"), "50000 100000\n");
  }
  CommandResult mounts = Nodectl({"mounts", "ex5"});
  EXPECT_THAT(mounts.out, HasSubstr("/mypoint"));
  EXPECT_EQ(Nodectl({"rm", "-f", "ex5"}).exit_code, 0);
}

}  // namespace
}  // namespace nodeagent::testing
