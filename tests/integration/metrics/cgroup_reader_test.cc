// The cgroup reader this host gets (v1 on hybrid hosts, v2 on unified ones) against a real
// cgroup with a real process in it: CPU it burns, memory it holds, its tasks, and NOT_FOUND once
// the cgroup is gone. Runs as root; removes its cgroups and processes even when it fails.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/metrics/core/parse.h"
#include "services/metrics/linux/cgroup_readers.h"
#include "services/metrics/linux/host_reader.h"

extern char** environ;

namespace nodeagent::metrics {
namespace {

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

class RealCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string mountinfo;
    ASSERT_TRUE(ReadSmallFile("/proc/self/mountinfo", &mountinfo).ok());
    auto layout = ParseCgroupLayout(mountinfo);
    ASSERT_TRUE(layout.ok()) << layout.status();
    layout_ = *layout;
    relative_ = absl::StrCat("/nodeagent-metrics-it-", getpid());
    if (layout_.unified) {
      dirs_.push_back(layout_.unified_root + relative_);
      std::ofstream(layout_.unified_root + "/cgroup.subtree_control") << "+cpu +memory +pids";
    } else {
      for (const char* c : {"memory", "cpu", "cpuacct", "pids", "blkio"}) {
        auto it = layout_.v1_mounts.find(c);
        if (it == layout_.v1_mounts.end()) continue;
        std::string dir = it->second + relative_;
        if (std::find(dirs_.begin(), dirs_.end(), dir) == dirs_.end()) dirs_.push_back(dir);
      }
    }
    for (const std::string& dir : dirs_) ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
    reader_ = NewCgroupReader(layout_);
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
    }
    for (const std::string& dir : dirs_) {
      // Killed tasks leave the cgroup asynchronously.
      EXPECT_TRUE(WaitFor([&] { return rmdir(dir.c_str()) == 0 || errno == ENOENT; },
                          std::chrono::seconds(10)))
          << dir;
    }
  }

  // Starts `script` under /bin/sh in its own process group, inside the test's cgroup.
  void Start(const std::string& script) {
    std::vector<std::string> join;
    for (const std::string& dir : dirs_)
      join.push_back(absl::StrCat("echo $$ > ", dir, "/cgroup.procs"));
    std::string full = absl::StrCat(absl::StrJoin(join, " && "), " || exit 1; ", script);
    const char* argv[] = {"/bin/sh", "-c", full.c_str(), nullptr};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    ASSERT_EQ(posix_spawn(&pid_, argv[0], nullptr, &attr, const_cast<char**>(argv), environ), 0);
    posix_spawnattr_destroy(&attr);
  }

  CgroupLayout layout_;
  std::string relative_;
  std::vector<std::string> dirs_;
  std::unique_ptr<CgroupReader> reader_;
  pid_t pid_ = -1;
};

TEST_F(RealCgroup, ReadsWhatTheKernelCounts) {
  auto handle = reader_->Open(relative_);
  auto empty = handle->Read();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->pids_current, 0u);
  EXPECT_EQ(empty->cpu_usage_nanos.value_or(1), 0u);

  // Holds 50 MiB of anonymous memory (dd's buffer, blocked on a pipe nobody reads) and burns
  // CPU in the shell.
  Start(
      "(dd if=/dev/zero bs=50M count=1 2>/dev/null | sleep 60) & "
      "i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done; wait");
  absl::StatusOr<CgroupSample> sample;
  ASSERT_TRUE(WaitFor(
      [&] {
        sample = handle->Read();
        return sample.ok() && sample->cpu_usage_nanos.value_or(0) > 300000000 &&
               sample->memory_working_set_bytes.value_or(0) >= 50u << 20;
      },
      std::chrono::seconds(30)))
      << (sample.ok() ? absl::StrCat("cpu ", sample->cpu_usage_nanos.value_or(0), " ws ",
                                     sample->memory_working_set_bytes.value_or(0))
                      : sample.status().ToString());
  EXPECT_NEAR(static_cast<double>(*sample->memory_working_set_bytes), 50.0 * (1 << 20),
              0.1 * 50 * (1 << 20));
  EXPECT_GE(*sample->memory_usage_bytes, *sample->memory_working_set_bytes);
  EXPECT_GE(sample->memory_rss_bytes.value_or(0), 50u << 20);
  // sh, the subshell, dd and sleep.
  EXPECT_GE(sample->pids_current.value_or(0), 3u);
  EXPECT_EQ(sample->oom_kills.value_or(99), 0u);
  ASSERT_TRUE(sample->cpu_user_nanos.has_value());
  EXPECT_GT(*sample->cpu_user_nanos + sample->cpu_system_nanos.value_or(0), 200000000u);

  // Gone: the reader says NOT_FOUND, through the descriptors it kept.
  kill(-pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  for (const std::string& dir : dirs_) {
    ASSERT_TRUE(WaitFor([&] { return rmdir(dir.c_str()) == 0; }, std::chrono::seconds(10))) << dir;
  }
  EXPECT_TRUE(absl::IsNotFound(handle->Read().status())) << handle->Read().status();
  EXPECT_TRUE(absl::IsNotFound(reader_->Open(relative_)->Read().status()));
}

TEST(RealHost, ReadsTheNodeAndANetworkNamespace) {
  auto host = NewHostReader();
  auto node = host->ReadNode();
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->machine_cpus, static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  uint64_t total = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  EXPECT_NEAR(static_cast<double>(node->machine_memory_bytes), static_cast<double>(total),
              0.01 * static_cast<double>(total));
  EXPECT_GT(node->totals.cpu_usage_nanos.value_or(0), 0u);
  EXPECT_GT(node->totals.memory_working_set_bytes.value_or(0), 0u);
  EXPECT_GT(node->totals.pids_current.value_or(0), 10u);
  auto net = host->ReadNetwork(getpid());
  ASSERT_TRUE(net.ok()) << net.status();
  bool has_lo = false;
  for (const InterfaceStats& i : *net) has_lo = has_lo || i.name == "lo";
  EXPECT_TRUE(has_lo);
}

TEST(RealHost, AProcessInTheNodesNetworkNamespaceHasNoNetworkOfItsOwn) {
  // This test runs in the node's network namespace, as a --network host container does: its
  // /proc/<pid>/net/dev is the host's, not the container's.
  auto host = NewHostReader();
  EXPECT_EQ(host->OpenNetwork(getpid()), nullptr);
}

}  // namespace
}  // namespace nodeagent::metrics
