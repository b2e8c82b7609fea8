// One conformance suite for both cgroup readers: the v1 fixture (this host's layout: memory,
// cpu and cpuacct apart, pids, blkio) and the v2 fixture describe the same container, so both
// readers must report the same figures.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/metrics/linux/cached_file.h"
#include "services/metrics/linux/cgroup_readers.h"
#include "tests/unit/metrics/test_util.h"

namespace nodeagent::metrics {
namespace {

std::unique_ptr<CgroupReader> V1Fixture() {
  std::map<std::string, std::string> mounts;
  for (const char* c : {"memory", "cpu", "cpuacct", "pids", "blkio"}) {
    mounts[c] = Fixture(std::string("cgroup_v1/") + c);
  }
  return NewCgroupV1Reader(mounts);
}

std::unique_ptr<CgroupReader> V2Fixture() { return NewCgroupV2Reader(Fixture("cgroup_v2")); }

class CgroupReaderConformance : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<CgroupReader> Reader() const {
    return GetParam() == "v1" ? V1Fixture() : V2Fixture();
  }
};

TEST_P(CgroupReaderConformance, ReportsTheVersion) { EXPECT_EQ(Reader()->Version(), GetParam()); }

TEST_P(CgroupReaderConformance, ReadsCpu) {
  auto sample = Reader()->Open("/nodeagent/abc")->Read();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->cpu_usage_nanos, 1843215000u);
  EXPECT_EQ(sample->cpu_periods, 212u);
  EXPECT_EQ(sample->cpu_throttled_periods, 37u);
  EXPECT_EQ(sample->cpu_throttled_nanos, 1532790000u);
  // v1 counts user/system time in clock ticks, v2 in microseconds.
  ASSERT_TRUE(sample->cpu_user_nanos.has_value());
  ASSERT_TRUE(sample->cpu_system_nanos.has_value());
  EXPECT_NEAR(static_cast<double>(*sample->cpu_user_nanos), 1.290877e9, 1.5e7);
  EXPECT_NEAR(static_cast<double>(*sample->cpu_system_nanos), 0.552338e9, 1.5e7);
}

TEST_P(CgroupReaderConformance, ReadsMemoryWithCadvisorsWorkingSet) {
  auto sample = Reader()->Open("/nodeagent/abc")->Read();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->memory_usage_bytes, 33554432u);
  EXPECT_EQ(sample->memory_max_usage_bytes, 41943040u);
  // usage - inactive_file (v1: total_inactive_file).
  EXPECT_EQ(sample->memory_working_set_bytes, 33554432u - 16384000u);
  EXPECT_EQ(sample->memory_rss_bytes, 11354112u);
  EXPECT_EQ(sample->memory_cache_bytes, 20480000u);
  EXPECT_EQ(sample->memory_mapped_file_bytes, 8192000u);
  EXPECT_EQ(sample->memory_failcnt, 17u);
  EXPECT_EQ(sample->memory_pgfault, 41247u);
  EXPECT_EQ(sample->memory_pgmajfault, 3u);
  EXPECT_EQ(sample->oom_kills, 1u);
}

TEST_P(CgroupReaderConformance, ReadsPidsAndBlockIo) {
  auto sample = Reader()->Open("/nodeagent/abc")->Read();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->pids_current, 3u);
  ASSERT_FALSE(sample->block_io.empty());
  const BlockDeviceIo& vda = sample->block_io[0];
  EXPECT_EQ(vda.major, 254u);
  EXPECT_EQ(vda.read_bytes, 1310720u);
  EXPECT_EQ(vda.write_bytes, 8192u);
  EXPECT_EQ(vda.reads, 42u);
  EXPECT_EQ(vda.writes, 2u);
}

TEST_P(CgroupReaderConformance, MissingCgroupIsNotFound) {
  auto sample = Reader()->Open("/nodeagent/gone")->Read();
  EXPECT_TRUE(absl::IsNotFound(sample.status())) << sample.status();
}

INSTANTIATE_TEST_SUITE_P(Versions, CgroupReaderConformance, ::testing::Values("v1", "v2"),
                         [](const auto& param_info) { return param_info.param; });

TEST(CgroupV1Reader, MissingControllersLeaveFieldsEmpty) {
  auto reader = NewCgroupV1Reader({{"memory", Fixture("cgroup_v1/memory")}});
  auto sample = reader->Open("/nodeagent/abc")->Read();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_TRUE(sample->memory_usage_bytes.has_value());
  EXPECT_FALSE(sample->cpu_usage_nanos.has_value());
  EXPECT_FALSE(sample->pids_current.has_value());
  EXPECT_TRUE(sample->block_io.empty());
}

TEST(CgroupV2Reader, WorkingSetIsFlooredAtZero) {
  // A cgroup whose inactive_file exceeds usage (possible: the two are read at different times).
  std::string dir = ::testing::TempDir() + "/metrics-v2-floor";
  std::string cg = dir + "/c";
  ASSERT_EQ(system(("mkdir -p " + cg).c_str()), 0);
  std::ofstream(cg + "/cpu.stat") << "usage_usec 1\n";
  std::ofstream(cg + "/memory.current") << "1000\n";
  std::ofstream(cg + "/memory.stat") << "inactive_file 4096\nanon 0\nfile 4096\n";
  auto sample = NewCgroupV2Reader(dir)->Open("/c")->Read();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->memory_working_set_bytes, 0u);
  ASSERT_EQ(system(("rm -rf " + dir).c_str()), 0);
}

TEST(CachedFile, ReadsByPathOnceTheDescriptorBudgetIsSpent) {
  int saved = cached_fd_budget.exchange(0);
  {
    auto sample = V2Fixture()->Open("/nodeagent/abc")->Read();
    ASSERT_TRUE(sample.ok()) << sample.status();
    EXPECT_EQ(sample->memory_usage_bytes, 33554432u);
    EXPECT_EQ(cached_fd_budget.load(), 0);
  }
  cached_fd_budget.store(2);
  {
    auto handle = V2Fixture()->Open("/nodeagent/abc");
    ASSERT_TRUE(handle->Read().ok());
    EXPECT_EQ(cached_fd_budget.load(), 0);  // Two files kept open, the rest read by path.
    ASSERT_TRUE(handle->Read().ok());
  }
  EXPECT_EQ(cached_fd_budget.load(), 2);  // Given back when the handle goes.
  cached_fd_budget.store(saved);
}

}  // namespace
}  // namespace nodeagent::metrics
