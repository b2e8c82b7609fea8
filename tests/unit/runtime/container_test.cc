#include "services/runtime/core/container.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nodeagent::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ResolveProcess, ArgsReplaceImageCmdButKeepEntrypoint) {
  ImageRunDefaults image;
  image.entrypoint = {"/entry"};
  image.cmd = {"default", "args"};
  ContainerConfig config;
  config.image = "img";
  auto defaults = ResolveProcess(config, image, "h");
  ASSERT_TRUE(defaults.ok());
  EXPECT_THAT(defaults->args, ElementsAre("/entry", "default", "args"));
  config.args = {"mine"};
  auto mine = ResolveProcess(config, image, "h");
  ASSERT_TRUE(mine.ok());
  EXPECT_THAT(mine->args, ElementsAre("/entry", "mine"));
}

TEST(ResolveProcess, NoCommandAnywhereIsInvalid) {
  ContainerConfig config;
  config.image = "scratchy";
  auto resolved = ResolveProcess(config, ImageRunDefaults{}, "h");
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(resolved.status().message(), HasSubstr("scratchy"));
}

TEST(ResolveProcess, EnvOverridesByKeyAndAlwaysHasPathAndHostname) {
  ImageRunDefaults image;
  image.cmd = {"sh"};
  image.env = {"A=image", "B=image"};
  ContainerConfig config;
  config.image = "img";
  config.env = {"B=mine", "C=mine"};
  auto resolved = ResolveProcess(config, image, "box");
  ASSERT_TRUE(resolved.ok());
  EXPECT_THAT(resolved->env, ElementsAre(HasSubstr("PATH=/usr/local/sbin"), "HOSTNAME=box",
                                         "A=image", "B=mine", "C=mine"));
  image.env = {"PATH=/custom"};
  resolved = ResolveProcess(config, image, "box");
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->env[0], "PATH=/custom");
}

TEST(ResolveProcess, WorkingDirPrecedence) {
  ImageRunDefaults image;
  image.cmd = {"sh"};
  ContainerConfig config;
  config.image = "img";
  EXPECT_EQ(ResolveProcess(config, image, "h")->cwd, "/");
  image.working_dir = "/app";
  EXPECT_EQ(ResolveProcess(config, image, "h")->cwd, "/app");
  config.working_dir = "/mine";
  EXPECT_EQ(ResolveProcess(config, image, "h")->cwd, "/mine");
}

TEST(Validate, NamesFollowDockersRule) {
  EXPECT_TRUE(ValidateContainerName("web").ok());
  EXPECT_TRUE(ValidateContainerName("a1_b.c-d").ok());
  for (const char* bad : {"", "-web", "_x", "has space", "slash/x", "../up"}) {
    absl::Status s = ValidateContainerName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateContainerName(std::string(200, 'a')).ok());
}

TEST(Validate, ConfigRejectsBadInputNamingIt) {
  ContainerConfig config;
  EXPECT_THAT(ValidateConfig(config).message(), HasSubstr("no image"));
  config.image = "busybox";
  config.working_dir = "relative";
  EXPECT_THAT(ValidateConfig(config).message(), HasSubstr("\"relative\""));
  config.working_dir = "/ok";
  config.env = {"=value"};
  EXPECT_THAT(ValidateConfig(config).message(), HasSubstr("\"=value\""));
  config.env = {"K=V"};
  config.hostname = "bad host";
  EXPECT_THAT(ValidateConfig(config).message(), HasSubstr("\"bad host\""));
  config.hostname = "good-host.local";
  EXPECT_TRUE(ValidateConfig(config).ok());
}

TEST(ContainerRecord, SurvivesSerialization) {
  ContainerRecord r;
  r.id = std::string(64, 'a');
  r.name = "web";
  r.config.image = "busybox";
  r.config.args = {"sh", "-c", "echo \"quoted\""};
  r.config.env = {"A=1"};
  r.config.limits.memory_bytes = 1 << 20;
  r.config.labels = {{"k", "v"}};
  r.config.auto_remove = true;
  r.config.mounts = {{"bind", "/src", "/dst", {"rbind", "ro"}}};
  r.state = ContainerState::kExited;
  r.process_args = {"sh"};
  r.rootfs_mounts = {{"overlay", "overlay", "", {"lowerdir=/a", "upperdir=/b"}}};
  r.pid = 42;
  r.shim_pid = 41;
  r.exit.exit_code = 137;
  r.exit.signal = 9;
  r.created_unix_nanos = 123;
  r.cgroup_path = "/nodeagent/aaa";
  auto parsed = ParseContainerRecord(SerializeContainerRecord(r));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id, r.id);
  EXPECT_EQ(parsed->name, "web");
  EXPECT_EQ(parsed->config.args, r.config.args);
  EXPECT_EQ(parsed->config.limits.memory_bytes, 1 << 20);
  EXPECT_EQ(parsed->config.labels.at("k"), "v");
  EXPECT_TRUE(parsed->config.auto_remove);
  ASSERT_EQ(parsed->config.mounts.size(), 1u);
  EXPECT_THAT(parsed->config.mounts[0].options, ElementsAre("rbind", "ro"));
  EXPECT_EQ(parsed->state, ContainerState::kExited);
  EXPECT_EQ(parsed->rootfs_mounts[0].options[1], "upperdir=/b");
  EXPECT_EQ(parsed->exit.exit_code, 137);
  EXPECT_EQ(parsed->exit.signal, 9);
  EXPECT_EQ(parsed->cgroup_path, "/nodeagent/aaa");
}

TEST(ContainerRecord, GarbageIsDataLoss) {
  EXPECT_EQ(ParseContainerRecord("{not json").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseContainerRecord("{}").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nodeagent::runtime

namespace nodeagent::runtime {
namespace {

TEST(UserNamespace, PrivateRangesDoNotOverlap) {
  EXPECT_EQ(*PickUserNamespaceRange({}), 100000u);
  EXPECT_EQ(*PickUserNamespaceRange({{0, 100000, 65536}}), 165536u);
  // A hole is reused; an explicit map overlapping the next range pushes past it.
  EXPECT_EQ(*PickUserNamespaceRange({{0, 165536, 65536}}), 100000u);
  EXPECT_EQ(*PickUserNamespaceRange({{0, 100000, 65536}, {0, 200000, 10}}), 231072u);
}

TEST(UserNamespace, ValidationNamesTheBadMapping) {
  UserNamespaceConfig none;
  EXPECT_TRUE(ValidateUserNamespace(none).ok());
  UserNamespaceConfig priv{"private", {}, {}};
  EXPECT_TRUE(ValidateUserNamespace(priv).ok());
  UserNamespaceConfig map{"map", {{0, 100000, 65536}}, {{0, 100000, 65536}}};
  EXPECT_TRUE(ValidateUserNamespace(map).ok());
  UserNamespaceConfig overlap{"map", {{0, 100000, 10}, {5, 200000, 10}}, {{0, 100000, 10}}};
  EXPECT_THAT(ValidateUserNamespace(overlap).message(), HasSubstr("overlaps"));
  UserNamespaceConfig zero{"map", {{0, 100000, 0}}, {{0, 100000, 1}}};
  EXPECT_THAT(ValidateUserNamespace(zero).message(), HasSubstr("uid mapping 0:100000:0"));
  UserNamespaceConfig huge{"map", {{0, 4294967000u, 65536}}, {{0, 100000, 1}}};
  EXPECT_THAT(ValidateUserNamespace(huge).message(), HasSubstr("2^32"));
  UserNamespaceConfig no_gid{"map", {{0, 100000, 1}}, {}};
  EXPECT_THAT(ValidateUserNamespace(no_gid).message(), HasSubstr("gid mappings"));
  UserNamespaceConfig bad_mode{"sometimes", {}, {}};
  EXPECT_THAT(ValidateUserNamespace(bad_mode).message(), HasSubstr("sometimes"));
  UserNamespaceConfig private_with_map{"private", {{0, 1, 1}}, {}};
  EXPECT_FALSE(ValidateUserNamespace(private_with_map).ok());
}

}  // namespace
}  // namespace nodeagent::runtime
