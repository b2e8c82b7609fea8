#include "services/runtime/linux/shim_protocol.h"

#include "gtest/gtest.h"
#include "services/runtime/linux/container_init.h"

namespace nodeagent::runtime {
namespace {

ShimConfig FullConfig() {
  ShimConfig c;
  c.id = "c0ffee";
  c.bundle = "/var/lib/nodeagent/runtime/containers/c0ffee";
  c.rootfs_mounts = {
      {"overlay", "overlay", "", {"lowerdir=/l2:/l1", "upperdir=/u", "workdir=/w", "index=off"}}};
  c.readonly_rootfs = true;
  c.mounts = {{"bind", "/srv/data", "/data", {"rbind", "ro", "rslave"}},
              {"tmpfs", "tmpfs", "/scratch", {"size=1m", "mode=1777"}}};
  c.hostname = "web-1";
  c.args = {"/bin/sh", "-c", "echo \"quoted\" 'and' \\ back\nslash"};
  c.env = {"PATH=/usr/bin:/bin", "EMPTY=", "UNICODE=h\xc3\xa9llo"};
  c.cwd = "/work dir";
  c.cgroup_dirs = {"/sys/fs/cgroup/memory/nodeagent/c0ffee", "/sys/fs/cgroup/cpu/nodeagent/c0ffee"};
  return c;
}

void ExpectMountsEqual(const std::vector<ShimMount>& a, const std::vector<ShimMount>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].type, b[i].type);
    EXPECT_EQ(a[i].source, b[i].source);
    EXPECT_EQ(a[i].destination, b[i].destination);
    EXPECT_EQ(a[i].options, b[i].options);
  }
}

TEST(ShimConfigTest, RoundTrip) {
  ShimConfig in = FullConfig();
  auto out = ParseShimConfig(SerializeShimConfig(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->id, in.id);
  EXPECT_EQ(out->bundle, in.bundle);
  ExpectMountsEqual(out->rootfs_mounts, in.rootfs_mounts);
  EXPECT_EQ(out->readonly_rootfs, in.readonly_rootfs);
  ExpectMountsEqual(out->mounts, in.mounts);
  EXPECT_EQ(out->hostname, in.hostname);
  EXPECT_EQ(out->args, in.args);
  EXPECT_EQ(out->env, in.env);
  EXPECT_EQ(out->cwd, in.cwd);
  EXPECT_EQ(out->cgroup_dirs, in.cgroup_dirs);
}

TEST(ShimConfigTest, DefaultsForOptionalFields) {
  auto out = ParseShimConfig(R"({"id": "x", "bundle": "/b", "args": ["true"]})");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->cwd, "/");
  EXPECT_FALSE(out->readonly_rootfs);
  EXPECT_TRUE(out->rootfs_mounts.empty());
  EXPECT_TRUE(out->cgroup_dirs.empty());
}

TEST(ShimConfigTest, Errors) {
  EXPECT_EQ(ParseShimConfig("{").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseShimConfig(R"({"id": "x", "bundle": "/b", "args": []})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseShimConfig(R"({"id": "x", "bundle": "/b"})").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseShimConfig(R"({"id": 5, "bundle": "/b", "args": ["true"]})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// What a warm node-shim may start: its child has new pid, mnt, uts, ipc, net and cgroup
// namespaces and a mount table from before the container existed.
TEST(WarmStartableTest, DefaultsAndJoinedNetworkAreWarm) {
  ShimConfig config;
  EXPECT_TRUE(WarmStartable(config).ok());
  config.namespaces = DefaultNamespaces();
  for (ShimNamespace& ns : *config.namespaces) {
    if (ns.type == "net") ns.path = "/run/nodeagent/netns/c1";
    if (ns.type == "ipc") ns.path = "/proc/42/ns/ipc";
  }
  EXPECT_TRUE(WarmStartable(config).ok());
  config.mounts.push_back({"bind", "/srv/data", "/data", {"rbind", "rslave"}});
  EXPECT_TRUE(WarmStartable(config).ok());
}

TEST(WarmStartableTest, WhatNeedsAColdStart) {
  auto without = [](const std::string& type) {
    ShimConfig config;
    config.namespaces = DefaultNamespaces();
    std::erase_if(*config.namespaces, [&](const ShimNamespace& ns) { return ns.type == type; });
    return config;
  };
  for (const char* type : {"pid", "uts", "cgroup", "net", "ipc"}) {
    absl::Status s = WarmStartable(without(type));
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << type;
  }
  ShimConfig joined_pid;
  joined_pid.namespaces = DefaultNamespaces();
  for (ShimNamespace& ns : *joined_pid.namespaces) {
    if (ns.type == "pid") ns.path = "/proc/42/ns/pid";
  }
  EXPECT_EQ(WarmStartable(joined_pid).code(), absl::StatusCode::kFailedPrecondition);

  ShimConfig userns;
  userns.namespaces = DefaultNamespaces();
  userns.namespaces->push_back({"user", ""});
  userns.uid_mappings = {{0, 100000, 65536}};
  userns.gid_mappings = {{0, 100000, 65536}};
  EXPECT_EQ(WarmStartable(userns).code(), absl::StatusCode::kFailedPrecondition);

  ShimConfig shared;
  shared.mounts.push_back({"bind", "/mnt/share", "/share", {"rbind", "rshared"}});
  EXPECT_EQ(WarmStartable(shared).code(), absl::StatusCode::kFailedPrecondition);

  ShimConfig other_ns;
  other_ns.mounts.push_back({"bind", "/dev/shm", "/dev/shm", {"rbind"}, "/proc/42/ns/mnt"});
  EXPECT_EQ(WarmStartable(other_ns).code(), absl::StatusCode::kFailedPrecondition);

  ShimConfig bad;
  bad.namespaces = std::vector<ShimNamespace>{{"pid", ""}};  // No "mnt": invalid anyway.
  EXPECT_EQ(WarmStartable(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WarmGoTest, ParsesTheBundle) {
  auto bundle = ParseWarmGo("go /var/lib/nodeagent/runtime/containers/abc\n");
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(*bundle, "/var/lib/nodeagent/runtime/containers/abc");
  for (const char* line :
       {"go relative/path\n", "go /no/newline", "stop /x\n", "go \n", "go /a\n/b\n", ""}) {
    EXPECT_EQ(ParseWarmGo(line).status().code(), absl::StatusCode::kInvalidArgument) << line;
  }
}

TEST(ExitRecordTest, RoundTrip) {
  ExitRecord in{137, 9, true, 1732924800123456789};
  auto out = ParseExitRecord(SerializeExitRecord(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->exit_code, 137);
  EXPECT_EQ(out->signal, 9);
  EXPECT_TRUE(out->oom_killed);
  EXPECT_EQ(out->finished_unix_nanos, 1732924800123456789);
  EXPECT_FALSE(ParseExitRecord("{}").ok());
}

TEST(InitErrorTest, RoundTrip) {
  absl::Status in = absl::NotFoundError("exec \"nosuch\": executable file not found in $PATH");
  EXPECT_EQ(EncodeInitError(in), "5 exec \"nosuch\": executable file not found in $PATH");
  EXPECT_EQ(DecodeInitError(EncodeInitError(in)), in);
}

TEST(InitErrorTest, NewlinesAreFlattened) {
  absl::Status in = absl::InternalError("two\nlines");
  EXPECT_EQ(DecodeInitError(EncodeInitError(in)), absl::InternalError("two lines"));
}

TEST(InitErrorTest, Malformed) {
  for (const char* text : {"", "garbage", "0 ok?", "99 no such code", "x y"}) {
    absl::Status s = DecodeInitError(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << text;
    EXPECT_NE(s.message().find("malformed"), absl::string_view::npos) << text;
  }
}

}  // namespace
}  // namespace nodeagent::runtime
