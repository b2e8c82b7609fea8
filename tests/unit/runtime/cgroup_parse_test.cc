#include "services/runtime/linux/cgroup_parse.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/linux/files.h"

namespace nodeagent::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

std::string Fixture(const std::string& name) {
  auto text = linux::ReadFile(std::string(NODEAGENT_FIXTURES_DIR) + "/" + name);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(CgroupV2ParseTest, Controllers) {
  EXPECT_THAT(ParseCgroupControllers(Fixture("cgroup_v2/cgroup.controllers")),
              ElementsAre("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"));
  EXPECT_THAT(ParseCgroupControllers(Fixture("cgroup_v2/cgroup.subtree_control")),
              ElementsAre("cpuset", "cpu", "io", "memory", "pids"));
  EXPECT_TRUE(ParseCgroupControllers("\n").empty());
}

TEST(CgroupV2ParseTest, MemoryEvents) {
  auto events = ParseFlatKeyed(Fixture("cgroup_v2/memory.events"));
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_THAT(*events,
              ElementsAre(Pair("high", 0u), Pair("low", 0u), Pair("max", 17u), Pair("oom", 2u),
                          Pair("oom_group_kill", 0u), Pair("oom_kill", 1u)));
}

TEST(CgroupV2ParseTest, CpuStat) {
  auto stat = ParseFlatKeyed(Fixture("cgroup_v2/cpu.stat"));
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->at("usage_usec"), 1843215u);
  EXPECT_EQ(stat->at("user_usec"), 1290877u);
  EXPECT_EQ(stat->at("system_usec"), 552338u);
  EXPECT_EQ(stat->at("nr_throttled"), 37u);
  EXPECT_EQ(stat->at("throttled_usec"), 1532790u);
  EXPECT_EQ(stat->size(), 9u);
}

TEST(CgroupV2ParseTest, MemoryStat) {
  auto stat = ParseFlatKeyed(Fixture("cgroup_v2/memory.stat"));
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->at("anon"), 11354112u);
  EXPECT_EQ(stat->at("inactive_file"), 16384000u);
  EXPECT_EQ(stat->at("pgmajfault"), 3u);
}

TEST(CgroupV2ParseTest, CgroupEvents) {
  auto events = ParseFlatKeyed(Fixture("cgroup_v2/cgroup.events"));
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->at("populated"), 1u);
  EXPECT_EQ(events->at("frozen"), 0u);
}

TEST(CgroupV2ParseTest, FlatKeyedRejectsGarbage) {
  EXPECT_EQ(ParseFlatKeyed("anon 12\nbroken\n").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseFlatKeyed("anon -1\n").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseFlatKeyed("a 1 2\n").status().code(), absl::StatusCode::kDataLoss);
  auto empty = ParseFlatKeyed("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(CgroupV2ParseTest, Procs) {
  auto pids = ParseCgroupProcs(Fixture("cgroup_v2/cgroup.procs"));
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(4242, 4250, 4251));
  EXPECT_TRUE(ParseCgroupProcs("")->empty());
  EXPECT_FALSE(ParseCgroupProcs("12\nx\n").ok());
}

TEST(CgroupV2ParseTest, Limits) {
  EXPECT_EQ(*ParseCgroupLimit(Fixture("cgroup_v2/pids.max")), -1);
  EXPECT_EQ(*ParseCgroupLimit(Fixture("cgroup_v2/memory.max")), 268435456);
  EXPECT_FALSE(ParseCgroupLimit("-3").ok());
  EXPECT_FALSE(ParseCgroupLimit("lots").ok());
}

TEST(CgroupV1MountsTest, HybridHost) {
  auto mounts = ParseCgroupV1Mounts(Fixture("mountinfo/hybrid.txt"), "/sys/fs/cgroup");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  EXPECT_THAT(
      *mounts,
      ElementsAre(
          Pair("blkio", "/sys/fs/cgroup/blkio"), Pair("cpu", "/sys/fs/cgroup/cpu"),
          Pair("cpuacct", "/sys/fs/cgroup/cpuacct"), Pair("cpuset", "/sys/fs/cgroup/cpuset"),
          Pair("devices", "/sys/fs/cgroup/devices"), Pair("freezer", "/sys/fs/cgroup/freezer"),
          Pair("memory", "/sys/fs/cgroup/memory"), Pair("pids", "/sys/fs/cgroup/pids")));
}

TEST(CgroupV1MountsTest, CoMountedControllersShareAMountPoint) {
  auto mounts = ParseCgroupV1Mounts(Fixture("mountinfo/v1_comounted.txt"), "/sys/fs/cgroup");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  EXPECT_EQ(mounts->at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(mounts->at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(mounts->at("net_cls"), "/sys/fs/cgroup/net_cls,net_prio");
  // clone_children is a mount option, not a controller; name=systemd is no controller.
  EXPECT_EQ(mounts->at("cpuset"), "/sys/fs/cgroup/cpuset");
  EXPECT_FALSE(mounts->contains("clone_children"));
  EXPECT_FALSE(mounts->contains("name=systemd"));
  EXPECT_FALSE(mounts->contains("xattr"));
  // Only below the root asked for.
  EXPECT_EQ(mounts->at("memory"), "/sys/fs/cgroup/memory");
}

TEST(CgroupV1MountsTest, EscapedMountPoints) {
  auto mounts = ParseCgroupV1Mounts(Fixture("mountinfo/v1_comounted.txt"), "/var/lib/my cgroups");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  EXPECT_THAT(*mounts, ElementsAre(Pair("memory", "/var/lib/my cgroups/memory")));
}

TEST(CgroupV1MountsTest, RootPrefixIsAPathPrefix) {
  // "/sys/fs/cgroupX" is not below "/sys/fs/cgroup".
  auto mounts = ParseCgroupV1Mounts("32 31 0:29 / /sys/fs/cgroupX/cpu rw - cgroup cgroup rw,cpu\n",
                                    "/sys/fs/cgroup");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  EXPECT_TRUE(mounts->empty());
}

TEST(CgroupV1MountsTest, MalformedLine) {
  EXPECT_EQ(ParseCgroupV1Mounts("32 31 0:29 / /x rw cgroup\n", "/").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nodeagent::runtime
