#include "services/metrics/linux/host_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/metrics/test_util.h"

namespace nodeagent::metrics {
namespace {

TEST(HostReader, ReadsNodeTotalsFromProc) {
  auto host = NewHostReader(Fixture("proc"), Fixture("sys"));
  auto node = host->ReadNode();
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->machine_memory_bytes, 2048000u * 1024);
  EXPECT_GE(node->machine_cpus, 1u);
  const CgroupSample& t = node->totals;
  EXPECT_EQ(t.memory_usage_bytes, (2048000u - 512000u) * 1024);
  EXPECT_EQ(t.memory_working_set_bytes, (2048000u - 512000u - 400000u) * 1024);
  EXPECT_EQ(t.memory_rss_bytes, 350000u * 1024);
  EXPECT_EQ(t.pids_current, 345u);
  // user+nice, system+irq+softirq, and steal, in USER_HZ ticks.
  uint64_t tick = 1000000000 / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  EXPECT_EQ(t.cpu_user_nanos, 10500u * tick);
  EXPECT_EQ(t.cpu_system_nanos, 3050u * tick);
  EXPECT_EQ(t.cpu_usage_nanos, 13555u * tick);
  // Whole disks with I/O only: vda, not vda1 (a partition) nor loop0.
  ASSERT_EQ(t.block_io.size(), 1u);
  EXPECT_EQ(t.block_io[0].read_bytes, 20000u * 512);
  EXPECT_EQ(t.block_io[0].write_bytes, 6000u * 512);
  EXPECT_EQ(node->network.size(), 2u);
}

TEST(HostReader, ReadsANetworkNamespaceThroughAPid) {
  auto host = NewHostReader(Fixture("proc"), Fixture("sys"));
  auto net = host->ReadNetwork(4242);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ((*net)[1].rx_bytes, 5234567u);
  EXPECT_TRUE(absl::IsNotFound(host->ReadNetwork(999999).status()));
}

TEST(HostReader, NamesBlockDevices) {
  auto host = NewHostReader(Fixture("proc"), Fixture("sys"));
  EXPECT_EQ(host->DeviceName(254, 0), "/dev/vda");
  EXPECT_EQ(host->DeviceName(254, 0), "/dev/vda");  // Cached.
  EXPECT_EQ(host->DeviceName(1, 99), "");
}

}  // namespace
}  // namespace nodeagent::metrics
