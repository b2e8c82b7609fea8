#include "services/runtime/linux/mount_options.h"

#include <sys/mount.h>

#include "gtest/gtest.h"

namespace nodeagent::runtime {
namespace {

TEST(ParseMountOptionsTest, FlagsPropagationAndDataAreSeparated) {
  auto opts = ParseMountOptions({"rbind", "ro", "nosuid", "nodev", "rslave"});
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_EQ(opts->flags, MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV);
  EXPECT_EQ(opts->propagation, MS_SLAVE | MS_REC);
  EXPECT_EQ(opts->data, "");
  EXPECT_TRUE(opts->IsBind());
}

TEST(ParseMountOptionsTest, UnknownOptionsBecomeDataInOrder) {
  auto opts =
      ParseMountOptions({"lowerdir=/l1:/l2", "upperdir=/u", "workdir=/w", "nosuid", "index=off"});
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_EQ(opts->flags, static_cast<unsigned long>(MS_NOSUID));
  EXPECT_EQ(opts->data, "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,index=off");
  EXPECT_FALSE(opts->IsBind());
}

TEST(ParseMountOptionsTest, LaterOptionsOverrideEarlierOnes) {
  auto opts = ParseMountOptions({"ro", "noexec", "rw", "exec", "suid", "private", "rshared"});
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_EQ(opts->flags, 0u);
  EXPECT_EQ(opts->propagation, MS_SHARED | MS_REC);
}

TEST(ParseMountOptionsTest, EveryPropagationKind) {
  struct Case {
    const char* option;
    unsigned long flags;
  } cases[] = {
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  for (const Case& c : cases) {
    auto opts = ParseMountOptions({c.option});
    ASSERT_TRUE(opts.ok()) << c.option;
    EXPECT_EQ(opts->propagation, c.flags) << c.option;
    EXPECT_EQ(opts->flags, 0u) << c.option;
  }
}

TEST(ParseMountOptionsTest, AtimeAndTmpfsStyleOptions) {
  auto opts = ParseMountOptions({"nosuid", "strictatime", "mode=755", "size=65536k"});
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_EQ(opts->flags, MS_NOSUID | MS_STRICTATIME);
  EXPECT_EQ(opts->data, "mode=755,size=65536k");
}

TEST(ParseMountOptionsTest, EmptyOptionIsAnError) {
  auto opts = ParseMountOptions({"ro", ""});
  EXPECT_EQ(opts.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseMountOptionsTest, NoOptions) {
  auto opts = ParseMountOptions({});
  ASSERT_TRUE(opts.ok());
  EXPECT_EQ(opts->flags, 0u);
  EXPECT_EQ(opts->propagation, 0u);
  EXPECT_EQ(opts->data, "");
}

TEST(MountFlagsToStringTest, NamesFlags) {
  EXPECT_EQ(MountFlagsToString(0), "0");
  EXPECT_EQ(MountFlagsToString(MS_BIND | MS_REC), "MS_BIND|MS_REC");
  EXPECT_EQ(MountFlagsToString(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC),
            "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC");
  EXPECT_EQ(MountFlagsToString(MS_SLAVE | MS_REC), "MS_REC|MS_SLAVE");
  EXPECT_EQ(MountFlagsToString(1ul << 40), "0x10000000000");
}

}  // namespace
}  // namespace nodeagent::runtime
