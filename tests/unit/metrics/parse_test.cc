#include "services/metrics/core/parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/metrics/test_util.h"

namespace nodeagent::metrics {
namespace {

TEST(ParseCgroupValue, NumbersAndMax) {
  EXPECT_EQ(*ParseCgroupValue("268435456\n"), 268435456u);
  EXPECT_EQ(*ParseCgroupValue("max\n"), kUnlimited);
  EXPECT_FALSE(ParseCgroupValue("12abc").ok());
  EXPECT_FALSE(ParseCgroupValue("").ok());
}

TEST(ForEachKeyedValue, VisitsNumericLines) {
  std::map<std::string, uint64_t> seen;
  ForEachKeyedValue("a 1\nb 22\nbad\nc x\nd 4",
                    [&](absl::string_view k, uint64_t v) { seen[std::string(k)] = v; });
  EXPECT_EQ(seen, (std::map<std::string, uint64_t>{{"a", 1}, {"b", 22}, {"d", 4}}));
}

TEST(ParseBlkio, MergesBytesAndOpsPerDevice) {
  auto io = ParseBlkio(
      ReadFixture("cgroup_v1/blkio/nodeagent/abc/blkio.throttle.io_service_bytes_recursive"),
      ReadFixture("cgroup_v1/blkio/nodeagent/abc/blkio.throttle.io_serviced_recursive"));
  ASSERT_TRUE(io.ok()) << io.status();
  ASSERT_EQ(io->size(), 1u);
  EXPECT_EQ((*io)[0].major, 254u);
  EXPECT_EQ((*io)[0].minor, 0u);
  EXPECT_EQ((*io)[0].read_bytes, 1310720u);
  EXPECT_EQ((*io)[0].write_bytes, 8192u);
  EXPECT_EQ((*io)[0].reads, 42u);
  EXPECT_EQ((*io)[0].writes, 2u);
  EXPECT_FALSE(ParseBlkio("8:0 Read\n", "").ok());
  EXPECT_TRUE(ParseBlkio("Total 0\n", "Total 0\n")->empty());
}

TEST(ParseIoStat, ReadsEveryDevice) {
  auto io = ParseIoStat(ReadFixture("cgroup_v2/nodeagent/abc/io.stat"));
  ASSERT_TRUE(io.ok()) << io.status();
  ASSERT_EQ(io->size(), 2u);
  EXPECT_EQ((*io)[0].read_bytes, 1310720u);
  EXPECT_EQ((*io)[0].writes, 2u);
  EXPECT_EQ((*io)[1].major, 7u);
  EXPECT_FALSE(ParseIoStat("nonsense rbytes=1\n").ok());
}

TEST(ParseNetDev, ReadsCounters) {
  auto net = ParseNetDev(ReadFixture("proc/4242/net/dev"));
  ASSERT_TRUE(net.ok()) << net.status();
  ASSERT_EQ(net->size(), 2u);
  EXPECT_EQ((*net)[0].name, "lo");
  const InterfaceStats& eth = (*net)[1];
  EXPECT_EQ(eth.name, "eth0");
  EXPECT_EQ(eth.rx_bytes, 5234567u);
  EXPECT_EQ(eth.rx_packets, 4321u);
  EXPECT_EQ(eth.rx_errors, 1u);
  EXPECT_EQ(eth.rx_dropped, 2u);
  EXPECT_EQ(eth.tx_bytes, 123456u);
  EXPECT_EQ(eth.tx_packets, 987u);
  EXPECT_EQ(eth.tx_errors, 3u);
  EXPECT_EQ(eth.tx_dropped, 4u);
  EXPECT_FALSE(ParseNetDev("h1\nh2\n eth0: 1 2 3\n").ok());
}

TEST(ParseProcStatCpu, ReadsTheCpuLine) {
  auto ticks = ParseProcStatCpu(ReadFixture("proc/stat"));
  ASSERT_TRUE(ticks.ok()) << ticks.status();
  EXPECT_EQ(ticks->user, 10000u);
  EXPECT_EQ(ticks->nice, 500u);
  EXPECT_EQ(ticks->system, 3000u);
  EXPECT_EQ(ticks->idle, 200000u);
  EXPECT_EQ(ticks->steal, 5u);
  EXPECT_FALSE(ParseProcStatCpu("intr 1\n").ok());
}

TEST(ParseMeminfo, ConvertsKilobytes) {
  auto mem = ParseMeminfo(ReadFixture("proc/meminfo"));
  EXPECT_EQ(mem["MemTotal"], 2048000u * 1024);
  EXPECT_EQ(mem["Inactive(file)"], 400000u * 1024);
}

TEST(ParseCgroupLayout, HybridHostIsV1WithSeparateCpuAndCpuacct) {
  auto layout = ParseCgroupLayout(ReadFixture("mountinfo/hybrid.txt"));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_FALSE(layout->unified);
  EXPECT_EQ(layout->v1_mounts.at("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(layout->v1_mounts.at("cpu"), "/sys/fs/cgroup/cpu");
  EXPECT_EQ(layout->v1_mounts.at("cpuacct"), "/sys/fs/cgroup/cpuacct");
  EXPECT_EQ(layout->v1_mounts.count("systemd"), 0u);
  EXPECT_EQ(layout->v1_mounts.count("name=systemd"), 0u);
}

TEST(ParseCgroupLayout, CoMountedControllersShareADirectory) {
  auto layout = ParseCgroupLayout(ReadFixture("mountinfo/v1_comounted.txt"));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_FALSE(layout->unified);
  EXPECT_EQ(layout->v1_mounts.at("cpu"), layout->v1_mounts.at("cpuacct"));
}

TEST(ParseCgroupLayout, PureV2) {
  auto layout = ParseCgroupLayout(ReadFixture("mountinfo/v2.txt"));
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_TRUE(layout->unified);
  EXPECT_EQ(layout->unified_root, "/sys/fs/cgroup");
  EXPECT_TRUE(layout->v1_mounts.empty());
}

TEST(ParseCgroupLayout, NoCgroupsIsAnError) {
  EXPECT_TRUE(absl::IsNotFound(
      ParseCgroupLayout("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n").status()));
}

TEST(ContainerLabelName, SanitizesLikeCadvisor) {
  EXPECT_EQ(ContainerLabelName("app"), "container_label_app");
  EXPECT_EQ(ContainerLabelName("com.example/tier-1"), "container_label_com_example_tier_1");
}

}  // namespace
}  // namespace nodeagent::metrics
