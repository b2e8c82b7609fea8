#include "cmd/nodectl/run_flags.h"

#include <gtest/gtest.h>

namespace nodeagent::nodectl {
namespace {

TEST(ParseMemoryBytes, SuffixesAreBinary) {
  EXPECT_EQ(*ParseMemoryBytes("64m"), 64 << 20);
  EXPECT_EQ(*ParseMemoryBytes("64M"), 64 << 20);
  EXPECT_EQ(*ParseMemoryBytes("1g"), 1LL << 30);
  EXPECT_EQ(*ParseMemoryBytes("1.5g"), 3LL << 29);
  EXPECT_EQ(*ParseMemoryBytes("8192k"), 8 << 20);
  EXPECT_EQ(*ParseMemoryBytes("10485760"), 10 << 20);
  EXPECT_EQ(*ParseMemoryBytes("64mb"), 64 << 20);
}

TEST(ParseMemoryBytes, RejectsNonsenseNamingIt) {
  for (const char* bad : {"", "m", "-5m", "lots", "12x", "1k", "1e30g", "nan"}) {
    auto parsed = ParseMemoryBytes(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find(bad), absl::string_view::npos) << bad;
  }
}

TEST(CpuQuota, FromCpusAndPercent) {
  auto half = CpuQuotaFromCpus("0.5", 2);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->quota_us, 50000);
  EXPECT_EQ(half->period_us, 100000);
  EXPECT_EQ(CpuQuotaFromCpus("2", 2)->quota_us, 200000);
  EXPECT_EQ(CpuQuotaFromPercent(50, 2)->quota_us, 50000);
  EXPECT_EQ(CpuQuotaFromPercent(150, 2)->quota_us, 150000);
  EXPECT_FALSE(CpuQuotaFromCpus("0", 2).ok());
  EXPECT_FALSE(CpuQuotaFromCpus("-1", 2).ok());
  EXPECT_FALSE(CpuQuotaFromCpus("3", 2).ok());
  EXPECT_FALSE(CpuQuotaFromCpus("0.001", 2).ok());
  EXPECT_FALSE(CpuQuotaFromCpus("half", 2).ok());
  EXPECT_FALSE(CpuQuotaFromPercent(0, 2).ok());
  EXPECT_FALSE(CpuQuotaFromPercent(201, 2).ok());
}

TEST(ParseLabels, KeyValueAndBareKey) {
  auto labels = ParseLabels({"app=web", "tier=", "flag", "eq=a=b"});
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->at("app"), "web");
  EXPECT_EQ(labels->at("tier"), "");
  EXPECT_EQ(labels->at("flag"), "");
  EXPECT_EQ(labels->at("eq"), "a=b");
  EXPECT_FALSE(ParseLabels({"=v"}).ok());
}

TEST(ParseVolumeFlag, BindsVolumesAndOptions) {
  auto bind = ParseVolumeFlag("/srv/data:/data:ro");
  ASSERT_TRUE(bind.ok()) << bind.status();
  EXPECT_EQ(bind->type, "bind");
  EXPECT_EQ(bind->source, "/srv/data");
  EXPECT_EQ(bind->destination, "/data");
  EXPECT_EQ(bind->options, (std::vector<std::string>{"rbind", "rprivate", "ro"}));
  auto volume = ParseVolumeFlag("cache:/var/cache");
  ASSERT_TRUE(volume.ok());
  EXPECT_EQ(volume->type, "volume");
  EXPECT_EQ(volume->source, "cache");
  auto slave = ParseVolumeFlag("/a:/b:rslave");
  ASSERT_TRUE(slave.ok());
  EXPECT_EQ(slave->options[1], "rslave");
  for (const char* bad : {"/only", "/a:relative", "/a:/", "bad name:/x", "/a:/b:rx", "a:b:c:d"}) {
    auto parsed = ParseVolumeFlag(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find(bad), absl::string_view::npos) << bad;
  }
}

TEST(ParseTmpfsFlag, DestinationAndOptions) {
  auto tmpfs = ParseTmpfsFlag("/run:size=64m,mode=1777");
  ASSERT_TRUE(tmpfs.ok());
  EXPECT_EQ(tmpfs->type, "tmpfs");
  EXPECT_EQ(tmpfs->destination, "/run");
  EXPECT_EQ(tmpfs->options, (std::vector<std::string>{"nosuid", "nodev", "size=64m", "mode=1777"}));
  EXPECT_FALSE(ParseTmpfsFlag("run").ok());
}

TEST(ParseMountFlag, DockerSyntax) {
  auto bind = ParseMountFlag("type=bind,src=/host,dst=/ctr,bind-propagation=rshared,readonly");
  ASSERT_TRUE(bind.ok()) << bind.status();
  EXPECT_EQ(bind->options, (std::vector<std::string>{"rbind", "rshared", "ro"}));
  auto tmpfs = ParseMountFlag("type=tmpfs,dst=/mypoint,tmpfs-size=16m");
  ASSERT_TRUE(tmpfs.ok()) << tmpfs.status();
  EXPECT_EQ(tmpfs->options, (std::vector<std::string>{"nosuid", "nodev", "size=16777216"}));
  auto volume = ParseMountFlag("type=volume,source=data,target=/data");
  ASSERT_TRUE(volume.ok());
  EXPECT_EQ(volume->type, "volume");
  for (const char* bad :
       {"type=bind,src=rel,dst=/x", "type=nfs,src=/a,dst=/b", "type=bind,dst=/x",
        "type=bind,src=/a,dst=/b,bind-propagation=sideways", "type=tmpfs,dst=/x,color=red"}) {
    EXPECT_EQ(ParseMountFlag(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace nodeagent::nodectl

namespace nodeagent::nodectl {
namespace {

TEST(ParseIdMapFlag, ContainerHostSize) {
  auto m = ParseIdMapFlag("0:100000:65536");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->container_id, 0u);
  EXPECT_EQ(m->host_id, 100000u);
  EXPECT_EQ(m->size, 65536u);
  for (const char* bad : {"0:100000", "a:1:2", "0:1:0", "0:-1:5", "0:1:2:3", ""}) {
    EXPECT_EQ(ParseIdMapFlag(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseDetachKeys, DockersSyntax) {
  EXPECT_EQ(*ParseDetachKeys("ctrl-p,ctrl-q"), "\x10\x11");
  EXPECT_EQ(*ParseDetachKeys("ctrl-a,x"), "\x01x");
  EXPECT_EQ(*ParseDetachKeys("ctrl-@,ctrl-["), std::string("\x00\x1b", 2));
  for (const char* bad : {"ctrl-", "ctrl-pq", "ab", "ctrl-1", ""}) {
    EXPECT_FALSE(ParseDetachKeys(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace nodeagent::nodectl
