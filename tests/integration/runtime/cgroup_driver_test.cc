// The cgroup drivers on the real host (root). One conformance suite runs against every driver
// this host can offer: v1 on hybrid or v1 hosts, v2 on the unified hierarchy (pure v2 hosts,
// or /sys/fs/cgroup/unified on hybrid ones, where it usually has no controllers to limit with).
// Each test uses its own parent ("nodeagent-test-<pid>-<n>") and removes it.

#include "services/runtime/linux/cgroup_driver.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/linux/files.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/cgroup_parse.h"
#include "services/runtime/linux/cgroup_v1.h"
#include "services/runtime/linux/cgroup_v2.h"
#include "tests/integration/runtime/test_support.h"

namespace nodeagent::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string Trimmed(const std::string& path) {
  auto text = linux::ReadFile(path);
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text))
                   : "<" + text.status().ToString() + ">";
}

// Where a v2 hierarchy is: the root on pure v2 hosts, <root>/unified on hybrid ones.
std::string UnifiedRoot() {
  for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (CgroupFileExists(root, "cgroup.controllers")) return root;
  }
  return "";
}

struct DriverKind {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<CgroupDriver>>(const std::string& parent)> make;
};

// Test names and failure messages show "v1" / "v2", not the struct's bytes.
void PrintTo(const DriverKind& kind, std::ostream* os) { *os << kind.name; }

std::vector<DriverKind> Kinds() {
  return {
      {"v1",
       [](const std::string& parent) -> absl::StatusOr<std::unique_ptr<CgroupDriver>> {
         auto mountinfo = linux::ReadFile("/proc/self/mountinfo");
         if (!mountinfo.ok()) return mountinfo.status();
         return NewCgroupV1Driver("/sys/fs/cgroup", parent, *mountinfo);
       }},
      {"v2",
       [](const std::string& parent) -> absl::StatusOr<std::unique_ptr<CgroupDriver>> {
         std::string root = UnifiedRoot();
         if (root.empty()) return absl::FailedPreconditionError("no cgroup2 mount");
         return NewCgroupV2Driver(root, parent);
       }},
  };
}

class CgroupDriverTest : public ::testing::TestWithParam<DriverKind> {
 protected:
  void SetUp() override {
    if (!testutil::IsRoot()) GTEST_SKIP() << "needs root";
    // The background sleeps of SpawnIn outlive their shell: as a subreaper this test, not the
    // host's init, inherits them and can reap them.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    static int counter = 0;
    parent_ = absl::StrCat("nodeagent-test-", ::getpid(), "-", ++counter);
    auto driver = GetParam().make(parent_);
    if (absl::IsFailedPrecondition(driver.status())) {
      GTEST_SKIP() << GetParam().name << " not on this host: " << driver.status();
    }
    ASSERT_TRUE(driver.ok()) << driver.status();
    driver_ = std::move(*driver);
  }

  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (driver_ == nullptr) return;
    auto ids = driver_->ListContainerIds();
    if (ids.ok()) {
      for (const std::string& id : *ids) EXPECT_TRUE(driver_->Destroy(id).ok()) << id;
    }
    testutil::RemoveCgroupParent(*driver_);
  }

  // A process that sleeps in `dirs` (it joins them before it execs), with `extra` more sleeping
  // children of its own.
  pid_t SpawnIn(const std::vector<std::string>& dirs, int extra) {
    int ready[2];
    EXPECT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      char c;
      ::close(ready[1]);
      if (::read(ready[0], &c, 1) != 1) ::_exit(1);
      std::string script;
      for (int i = 0; i < extra; ++i) script += "sleep 1000 & ";
      script += "exec sleep 1000";
      ::execl("/bin/busybox", "sh", "-c", script.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(ready[0]);
    for (const std::string& dir : dirs) {
      EXPECT_TRUE(WriteCgroupFile(dir, "cgroup.procs", absl::StrCat(pid)).ok()) << dir;
    }
    EXPECT_EQ(::write(ready[1], "x", 1), 1);
    ::close(ready[1]);
    children_.push_back(pid);
    return pid;
  }

  std::string parent_;
  std::unique_ptr<CgroupDriver> driver_;
  std::vector<pid_t> children_;
};

TEST_P(CgroupDriverTest, CreateListDestroy) {
  auto dirs = driver_->Create("c1", {});
  ASSERT_TRUE(dirs.ok()) << dirs.status();
  ASSERT_FALSE(dirs->empty());
  for (const std::string& dir : *dirs) {
    EXPECT_TRUE(absl::EndsWith(dir, "/" + parent_ + "/c1")) << dir;
    EXPECT_TRUE(CgroupFileExists(dir, "cgroup.procs")) << dir;
  }
  EXPECT_EQ(driver_->RelativePath("c1"), "/" + parent_ + "/c1");
  EXPECT_THAT(*driver_->ListContainerIds(), ElementsAre("c1"));
  ASSERT_TRUE(driver_->Destroy("c1").ok());
  for (const std::string& dir : *dirs) EXPECT_FALSE(linux::PathExists(dir)) << dir;
  EXPECT_THAT(*driver_->ListContainerIds(), IsEmpty());
}

TEST_P(CgroupDriverTest, DestroyKillsEverythingInside) {
  auto dirs = driver_->Create("c1", {});
  ASSERT_TRUE(dirs.ok()) << dirs.status();
  pid_t pid = SpawnIn(*dirs, 2);
  // The shell and its two background sleeps.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (CgroupTreeProcs(dirs->front())->size() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  std::vector<pid_t> pids = *CgroupTreeProcs(dirs->front());
  ASSERT_EQ(pids.size(), 3u);
  ASSERT_TRUE(driver_->Destroy("c1").ok());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  children_.clear();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // The shell's children were handed to us when it died; all were killed too.
  for (pid_t other : pids) {
    if (other == pid) continue;
    ASSERT_EQ(::waitpid(other, &status, 0), other);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
  for (const std::string& dir : *dirs) EXPECT_FALSE(linux::PathExists(dir)) << dir;
}

// A warm slot's cgroup becomes a container's by rename (v1): the process stays in it, the
// limits apply, and a clash undoes every rename. v2 cannot rename.
TEST_P(CgroupDriverTest, AdoptRenamesWithTheProcessInsideAndAppliesLimits) {
  auto warm = driver_->Create("warm-1", {});
  ASSERT_TRUE(warm.ok()) << warm.status();
  pid_t pid = SpawnIn(*warm, 0);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (CgroupTreeProcs(warm->front())->empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  CgroupLimits limits;
  limits.memory_bytes = 64 << 20;
  limits.pids_limit = 30;
  auto adopted = driver_->Adopt("warm-1", "c1", limits);
  if (driver_->Version() == "v2") {
    EXPECT_EQ(adopted.status().code(), absl::StatusCode::kUnimplemented);
    return;
  }
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  ASSERT_EQ(adopted->size(), warm->size());
  for (size_t i = 0; i < warm->size(); ++i) {
    EXPECT_TRUE(absl::EndsWith((*adopted)[i], "/" + parent_ + "/c1")) << (*adopted)[i];
    EXPECT_FALSE(linux::PathExists((*warm)[i])) << (*warm)[i];
    EXPECT_THAT(*CgroupTreeProcs((*adopted)[i]), ElementsAre(pid)) << (*adopted)[i];
  }
  EXPECT_THAT(*driver_->ListContainerIds(), ElementsAre("c1"));
  bool saw_memory = false, saw_pids = false;
  for (const std::string& dir : *adopted) {
    if (CgroupFileExists(dir, "memory.limit_in_bytes")) {
      saw_memory = true;
      EXPECT_EQ(*ReadCgroupFile(dir, "memory.limit_in_bytes"), absl::StrCat(64 << 20, "\n"));
    }
    if (CgroupFileExists(dir, "pids.max")) {
      saw_pids = true;
      EXPECT_EQ(*ReadCgroupFile(dir, "pids.max"), "30\n");
    }
  }
  EXPECT_TRUE(saw_memory && saw_pids);

  // Renaming onto an existing container's cgroup: refused, the slot keeps its name.
  ASSERT_TRUE(driver_->Create("warm-2", {}).ok());
  auto clash = driver_->Adopt("warm-2", "c1", {});
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists) << clash.status();
  EXPECT_THAT(*driver_->ListContainerIds(), ElementsAre("c1", "warm-2"));
  EXPECT_EQ(driver_->Adopt("missing", "c2", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->Adopt("warm-2", "../x", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(CgroupDriverTest, DestroyRemovesNestedCgroups) {
  auto dirs = driver_->Create("c1", {});
  ASSERT_TRUE(dirs.ok()) << dirs.status();
  // What a container that manages its own cgroups (cgroup namespace) would leave.
  for (const std::string& dir : *dirs) {
    ASSERT_TRUE(linux::MakeDirs(dir + "/inner/deeper").ok());
  }
  ASSERT_TRUE(driver_->Destroy("c1").ok());
  for (const std::string& dir : *dirs) EXPECT_FALSE(linux::PathExists(dir)) << dir;
}

TEST_P(CgroupDriverTest, MissingCgroupIsNoError) {
  EXPECT_TRUE(driver_->Destroy("never-made").ok());
}

TEST_P(CgroupDriverTest, CreateTwiceIsAlreadyExists) {
  ASSERT_TRUE(driver_->Create("c1", {}).ok());
  EXPECT_EQ(driver_->Create("c1", {}).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_P(CgroupDriverTest, BadIdsAndLimitsAreRejectedUpFront) {
  for (const char* id : {"", ".", "..", "a/b", "../escape", "sp ace"}) {
    EXPECT_EQ(driver_->Create(id, {}).status().code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_EQ(driver_->Destroy(id).code(), absl::StatusCode::kInvalidArgument) << id;
  }
  CgroupLimits negative;
  negative.memory_bytes = -5;
  auto s = driver_->Create("c1", negative).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("memory_bytes is -5"));
  EXPECT_THAT(*driver_->ListContainerIds(), IsEmpty());
}

TEST_P(CgroupDriverTest, LimitsAreWrittenOrRefused) {
  CgroupLimits limits;
  limits.memory_bytes = 64 << 20;
  limits.cpu_quota_us = 50000;
  limits.cpu_period_us = 100000;
  limits.pids_limit = 32;
  limits.cpuset_cpus = "0";
  auto dirs = driver_->Create("c1", limits);
  if (driver_->Version() == "v1") {
    ASSERT_TRUE(dirs.ok()) << dirs.status();
    int seen = 0;
    for (const std::string& dir : *dirs) {
      if (CgroupFileExists(dir, "memory.limit_in_bytes")) {
        EXPECT_EQ(Trimmed(dir + "/memory.limit_in_bytes"), "67108864");
        ++seen;
      }
      if (CgroupFileExists(dir, "cpu.cfs_quota_us")) {
        EXPECT_EQ(Trimmed(dir + "/cpu.cfs_quota_us"), "50000");
        EXPECT_EQ(Trimmed(dir + "/cpu.cfs_period_us"), "100000");
        ++seen;
      }
      if (CgroupFileExists(dir, "pids.max")) {
        EXPECT_EQ(Trimmed(dir + "/pids.max"), "32");
        ++seen;
      }
      if (CgroupFileExists(dir, "cpuset.cpus")) {
        EXPECT_EQ(Trimmed(dir + "/cpuset.cpus"), "0");
        EXPECT_NE(Trimmed(dir + "/cpuset.mems"), "");  // Copied: v1 needs it to join.
        ++seen;
      }
    }
    EXPECT_EQ(seen, 4);
    return;
  }
  std::string root = UnifiedRoot();
  auto available = ParseCgroupControllers(*linux::ReadFile(root + "/cgroup.controllers"));
  auto has = [&](const char* c) {
    return std::find(available.begin(), available.end(), c) != available.end();
  };
  if (!has("memory") || !has("cpu") || !has("pids") || !has("cpuset")) {
    // A hybrid host's unified hierarchy: no controller to enforce the limits with.
    EXPECT_EQ(dirs.status().code(), absl::StatusCode::kFailedPrecondition) << dirs.status();
    EXPECT_THAT(*driver_->ListContainerIds(), IsEmpty());
    return;
  }
  ASSERT_TRUE(dirs.ok()) << dirs.status();
  const std::string& dir = dirs->front();
  EXPECT_EQ(Trimmed(dir + "/memory.max"), "67108864");
  EXPECT_EQ(Trimmed(dir + "/cpu.max"), "50000 100000");
  EXPECT_EQ(Trimmed(dir + "/pids.max"), "32");
  EXPECT_EQ(Trimmed(dir + "/cpuset.cpus"), "0");
}

TEST_P(CgroupDriverTest, KernelRejectionNamesFileAndDataAndLeavesNothing) {
  if (driver_->Version() == "v2" &&
      !absl::StrContains(*linux::ReadFile(UnifiedRoot() + "/cgroup.controllers"), "cpuset")) {
    GTEST_SKIP() << "no cpuset controller on " << UnifiedRoot();
  }
  CgroupLimits limits;
  limits.cpuset_cpus = "100000";  // No such CPU.
  auto dirs = driver_->Create("c1", limits);
  ASSERT_FALSE(dirs.ok());
  EXPECT_THAT(dirs.status().message(),
              ::testing::AllOf(HasSubstr("write \"/sys/fs/cgroup/"),
                               HasSubstr("/" + parent_ + "/c1/cpuset.cpus\" = \"100000\": ")));
  EXPECT_THAT(*driver_->ListContainerIds(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Drivers, CgroupDriverTest, ::testing::ValuesIn(Kinds()),
                         [](const auto& test_info) { return test_info.param.name; });

TEST(DetectCgroupDriverTest, PicksWhatTheHostHas) {
  if (!testutil::IsRoot()) GTEST_SKIP() << "needs root";
  auto driver = DetectCgroupDriver("/sys/fs/cgroup", "nodeagent-test-detect");
  ASSERT_TRUE(driver.ok()) << driver.status();
  bool pure_v2 = CgroupFileExists("/sys/fs/cgroup", "cgroup.controllers");
  EXPECT_EQ((*driver)->Version(), pure_v2 ? "v2" : "v1");
}

TEST(DetectCgroupDriverTest, NoCgroupsIsFailedPrecondition) {
  testutil::TempDir empty("nodeagent-nocgroup");
  auto driver = DetectCgroupDriver(empty.path(), "nodeagent");
  EXPECT_EQ(driver.status().code(), absl::StatusCode::kFailedPrecondition) << driver.status();
}

}  // namespace
}  // namespace nodeagent::runtime
