// End-to-end: containers started by a warm node-shim (services/runtime/linux/warm_shim_pool.h).
// On this cgroup v1 host the runtime keeps one node-shim ready, its child already in a
// "warm-*" cgroup; a start renames that cgroup to the container's. These tests check that such
// a container is whole (its own cgroup with its limits, namespaces, hostname), that what the
// warm path cannot start starts cold, and that a slot never outlives the runtime.

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class WarmStartE2E : public NodeFixture {
 protected:
  static std::string MemoryParent() {
    return absl::StrCat("/sys/fs/cgroup/memory/", cgroup_parent_);
  }

  // Names of the warm slots' cgroups below the node's parent.
  static std::vector<std::string> WarmCgroups() {
    std::vector<std::string> out;
    DIR* d = opendir(MemoryParent().c_str());
    if (d == nullptr) return out;
    while (struct dirent* e = readdir(d)) {
      if (absl::StartsWith(e->d_name, "warm-")) out.emplace_back(e->d_name);
    }
    closedir(d);
    return out;
  }

  // Pids of node-shims in warm mode whose cgroups are below this node's parent, and of their
  // children (which have the same command line until they exec).
  static std::vector<int> WarmShimPids() {
    std::vector<int> out;
    DIR* d = opendir("/proc");
    while (struct dirent* e = readdir(d)) {
      int pid = 0;
      if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
      std::string cmdline = ReadText(absl::StrCat("/proc/", pid, "/cmdline"));
      if (absl::StrContains(cmdline, std::string("node-shim\0warm", 14)) &&
          absl::StrContains(cmdline, absl::StrCat("/", cgroup_parent_, "/warm-"))) {
        out.push_back(pid);
      }
    }
    closedir(d);
    return out;
  }

  template <typename Pred>
  static bool Eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  static int ParentPid(int pid) {
    std::string stat = ReadText(absl::StrCat("/proc/", pid, "/stat"));
    std::vector<std::string> f =
        absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ', absl::SkipEmpty());
    int ppid = 0;
    return f.size() > 1 && absl::SimpleAtoi(f[1], &ppid) ? ppid : 0;
  }

  static int ContainerPid(const std::string& id) {
    int pid = 0;
    EXPECT_TRUE(absl::SimpleAtoi(InspectField(id, "pid"), &pid));
    return pid;
  }
};

TEST_F(WarmStartE2E, WarmStartedContainerHasItsOwnCgroupLimitsAndNamespaces) {
  ASSERT_TRUE(Eventually([] { return WarmCgroups().size() == 1; })) << "no warm slot";
  const std::string slot = WarmCgroups()[0];
  std::string id = RunDetached({"-m", "48m", "--pids-limit", "64", "--network", "none", "busybox",
                                "sh", "-c", "hostname; cat /proc/self/cgroup; sleep 600"});
  int pid = ContainerPid(id);
  ASSERT_GT(pid, 0);
  // Started by the warm node-shim, not a new one.
  std::string shim_cmdline = ReadText(absl::StrCat("/proc/", ParentPid(pid), "/cmdline"));
  EXPECT_THAT(shim_cmdline, HasSubstr(absl::StrCat(slot, std::string(1, '\0'))));
  // The slot's cgroup now is the container's, with its limits.
  std::string own = absl::StrCat(MemoryParent(), "/", id);
  EXPECT_THAT(ReadText(absl::StrCat("/proc/", pid, "/cgroup")),
              HasSubstr(absl::StrCat(":memory:/", cgroup_parent_, "/", id, "\n")));
  EXPECT_EQ(ReadText(own + "/memory.limit_in_bytes"), absl::StrCat(48 << 20, "\n"));
  EXPECT_EQ(ReadText(absl::StrCat("/sys/fs/cgroup/pids/", cgroup_parent_, "/", id, "/pids.max")),
            "64\n");
  EXPECT_FALSE(Exists(absl::StrCat(MemoryParent(), "/", slot)));
  // Inside: its own hostname and a cgroup namespace rooted at its cgroup.
  ASSERT_TRUE(Eventually([&] { return absl::StrContains(Nodectl({"logs", id}).out, "memory"); }));
  std::string logs = Nodectl({"logs", id}).out;
  EXPECT_TRUE(absl::StartsWith(logs, id.substr(0, 12) + "\n")) << logs;
  EXPECT_THAT(logs, HasSubstr(":memory:/\n"));
  EXPECT_EQ(Nodectl({"exec", id, "sh", "-c", "ip link show lo | grep -c UP"}).out, "1\n");
  // Its own pid namespace: it is PID 1 there (sh exec'd its last command).
  EXPECT_EQ(Nodectl({"exec", id, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"}).out,
            "sleep 600 ");
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
  EXPECT_FALSE(Exists(own));
  // A new slot replaces the one taken.
  EXPECT_TRUE(Eventually([&] {
    std::vector<std::string> now = WarmCgroups();
    return now.size() == 1 && now[0] != slot;
  }));
}

TEST_F(WarmStartE2E, BridgeNetworkAndOutputWorkWarm) {
  ASSERT_TRUE(Eventually([] { return WarmCgroups().size() == 1; }));
  const std::string slot = WarmCgroups()[0];
  // The default bridge network: the netns the network service made is joined by the warm child.
  CommandResult r = Sh("ip -4 addr show eth0 | grep -c inet; echo out; echo err >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "1\nout\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(Exists(absl::StrCat(MemoryParent(), "/", slot))) << "the slot was not used";
}

TEST_F(WarmStartE2E, WhatAWarmShimCannotStartStartsCold) {
  ASSERT_TRUE(Eventually([] { return WarmCgroups().size() == 1; }));
  const std::string slot = WarmCgroups()[0];
  // The host's network namespace: the warm child has a new one already.
  std::string id = RunDetached({"--network", "host", "busybox", "sleep", "600"});
  std::string shim_cmdline =
      ReadText(absl::StrCat("/proc/", ParentPid(ContainerPid(id)), "/cmdline"));
  EXPECT_THAT(shim_cmdline, HasSubstr(std::string("\0--bundle\0", 10)));
  EXPECT_EQ(WarmCgroups(), std::vector<std::string>{slot}) << "the slot was used";
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);

  // A host path bound in: it may be a mount newer than the slot's copy of the mount table.
  std::string dir = base_ + "/bound";
  ASSERT_EQ(RunCommand({"mkdir", "-p", dir}).exit_code, 0);
  id = RunDetached({"--network", "none", "-v", dir + ":/data", "busybox", "sleep", "600"});
  shim_cmdline = ReadText(absl::StrCat("/proc/", ParentPid(ContainerPid(id)), "/cmdline"));
  EXPECT_THAT(shim_cmdline, HasSubstr(std::string("\0--bundle\0", 10)));
  EXPECT_EQ(WarmCgroups(), std::vector<std::string>{slot}) << "the slot was used";
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
}

TEST_F(WarmStartE2E, AWarmShimKilledWhileReadyIsReplaced) {
  ASSERT_TRUE(Eventually([] { return WarmCgroups().size() == 1 && !WarmShimPids().empty(); }));
  const std::string slot = WarmCgroups()[0];
  int runtime_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripTrailingAsciiWhitespace(ReadText(RunDir() + "/runtime.pid")), &runtime_pid));
  int shim = 0;
  for (int pid : WarmShimPids()) {
    if (ParentPid(pid) == runtime_pid) shim = pid;
  }
  ASSERT_GT(shim, 0);
  ASSERT_EQ(kill(shim, SIGKILL), 0);  // No chance to clean up: the runtime must.
  EXPECT_EQ(Sh("echo still starts", {"--network", "none"}).out, "still starts\n");
  EXPECT_TRUE(Eventually([&] {
    std::vector<std::string> now = WarmCgroups();
    return now.size() == 1 && now[0] != slot;
  })) << "the killed slot's cgroup was not replaced";
}

TEST_F(WarmStartE2E, AKilledRuntimeLeavesNoWarmSlot) {
  ASSERT_TRUE(Eventually([] { return WarmCgroups().size() == 1 && !WarmShimPids().empty(); }));
  int runtime_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripTrailingAsciiWhitespace(ReadText(RunDir() + "/runtime.pid")), &runtime_pid));
  ASSERT_EQ(kill(runtime_pid, SIGKILL), 0);
  // Its control pipe closed, the slot's node-shim removes its child and cgroup and exits.
  EXPECT_TRUE(Eventually([] { return WarmShimPids().empty() && WarmCgroups().empty(); }))
      << WarmShimPids().size() << " warm node-shims, " << WarmCgroups().size() << " cgroups";
  CommandResult up = Nodectl({"up", "--root", base_ + "/state", "--log-dir", base_ + "/log",
                              "--metrics-address", "", "--cgroup-parent", cgroup_parent_});
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_TRUE(Eventually([] { return WarmCgroups().size() == 1; }));
  EXPECT_EQ(Sh("echo up again").out, "up again\n");
}

}  // namespace
}  // namespace nodeagent::testing
