#include "services/runtime/linux/seccomp_profile.h"

#include <errno.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <seccomp.h>

namespace nodeagent::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SeccompProfile, ParsesDockersFormat) {
  auto p = ParseSeccompProfile(R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "syscalls": [
      {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
      {"name": "personality", "action": "SCMP_ACT_ERRNO",
       "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
       "includes": {"caps": ["CAP_SYS_ADMIN"]}, "excludes": {"arches": ["s390x"]}}
    ]})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->default_action, "SCMP_ACT_ALLOW");
  EXPECT_THAT(p->architectures, ElementsAre("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"));
  ASSERT_EQ(p->syscalls.size(), 2u);
  EXPECT_THAT(p->syscalls[0].names, ElementsAre("mkdir", "mkdirat"));
  EXPECT_EQ(p->syscalls[0].errno_ret, 1);
  EXPECT_THAT(p->syscalls[1].names, ElementsAre("personality"));
  EXPECT_EQ(p->syscalls[1].errno_ret, -1);
  ASSERT_EQ(p->syscalls[1].args.size(), 1u);
  EXPECT_EQ(p->syscalls[1].args[0].value, 8u);
  EXPECT_THAT(p->syscalls[1].include_caps, ElementsAre("CAP_SYS_ADMIN"));
  EXPECT_THAT(p->syscalls[1].exclude_arches, ElementsAre("s390x"));
}

TEST(SeccompProfile, BadProfilesNameWhatIsWrong) {
  EXPECT_THAT(ParseSeccompProfile("{").status().message(), HasSubstr("seccomp profile"));
  EXPECT_THAT(ParseSeccompProfile("{}").status().message(), HasSubstr("no defaultAction"));
  EXPECT_THAT(ParseSeccompProfile(R"({"defaultAction": "SCMP_ACT_MAYBE"})").status().message(),
              HasSubstr("SCMP_ACT_MAYBE"));
  auto bad_action = ParseSeccompProfile(
      R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "NOPE"}]})");
  EXPECT_THAT(bad_action.status().message(), HasSubstr("syscalls[0].action"));
  auto bad_op = ParseSeccompProfile(
      R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"],
          "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]})");
  EXPECT_THAT(bad_op.status().message(), HasSubstr("LIKE"));
  auto bad_index = ParseSeccompProfile(
      R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"],
          "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})");
  EXPECT_THAT(bad_index.status().message(), HasSubstr("index 6"));
  auto unnamed = ParseSeccompProfile(
      R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]})");
  EXPECT_THAT(unnamed.status().message(), HasSubstr("no syscall names"));
}

TEST(SeccompProfile, ActionsAndErrnoDefaults) {
  EXPECT_EQ(*SeccompAction("SCMP_ACT_ALLOW", -1), SCMP_ACT_ALLOW);
  EXPECT_EQ(*SeccompAction("SCMP_ACT_ERRNO", -1), SCMP_ACT_ERRNO(EPERM));
  EXPECT_EQ(*SeccompAction("SCMP_ACT_ERRNO", ENOSYS), SCMP_ACT_ERRNO(ENOSYS));
  EXPECT_EQ(*SeccompAction("SCMP_ACT_KILL", -1), SCMP_ACT_KILL_THREAD);
  EXPECT_EQ(*SeccompAction("SCMP_ACT_KILL_PROCESS", -1), SCMP_ACT_KILL_PROCESS);
  EXPECT_FALSE(SeccompAction("allow", -1).ok());
}

TEST(SeccompProfile, JsonIsToldFromNames) {
  EXPECT_TRUE(IsSeccompProfileJson("  {\"defaultAction\": 1}"));
  EXPECT_FALSE(IsSeccompProfileJson("default"));
  EXPECT_FALSE(IsSeccompProfileJson(""));
}

}  // namespace
}  // namespace nodeagent::runtime
