// Resource limits hold, measured from the kernel's own counters (issue 3, point 4): a memory
// hog is OOM-killed at -m and reported as OOMKilled, a busy loop under --cpus 0.5 gets about
// half a core, a fork bomb stops at --pids-limit. Through nodectl against a node of the test's
// own; the cgroup files are read where the runtime put them (v1 hierarchies or cgroup2).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

bool PureCgroup2() { return Exists("/sys/fs/cgroup/cgroup.controllers"); }

class LimitsE2E : public NodeFixture {
 protected:
  static std::string Detached(std::vector<std::string> args) {
    args.insert(args.begin(), {"--network", "none"});
    return RunDetached(std::move(args));
  }

  // A file of the container's cgroup: v1 under its controller's hierarchy, v2 in its one dir.
  static std::string CgroupFile(const std::string& id, const std::string& v1_controller,
                                const std::string& v1_file, const std::string& v2_file) {
    std::string path = InspectField(id, "cgroup_path");
    if (PureCgroup2()) return absl::StrCat("/sys/fs/cgroup/", path, "/", v2_file);
    return absl::StrCat("/sys/fs/cgroup/", v1_controller, "/", path, "/", v1_file);
  }

  static int64_t ReadNumber(const std::string& file) {
    int64_t v = -1;
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadText(file)), &v);
    return v;
  }

  // "key value" line of a flat-keyed cgroup file (cpu.stat, pids.events...).
  static int64_t ReadKey(const std::string& file, const std::string& key) {
    for (absl::string_view line : absl::StrSplit(ReadText(file), '\n')) {
      std::vector<absl::string_view> kv = absl::StrSplit(line, ' ');
      int64_t v;
      if (kv.size() == 2 && kv[0] == key && absl::SimpleAtoi(kv[1], &v)) return v;
    }
    return -1;
  }

  // CPU time the container's cgroup has used, in seconds.
  static double CpuSeconds(const std::string& id) {
    if (PureCgroup2()) {
      return ReadKey(CgroupFile(id, "", "", "cpu.stat"), "usage_usec") / 1e6;
    }
    return ReadNumber(CgroupFile(id, "cpuacct", "cpuacct.usage", "")) / 1e9;
  }
};

TEST_F(LimitsE2E, MemoryHogIsOomKilledAtTheLimitAndReportedAsOomKilled) {
  // dd's 64 MiB buffer is touched as it reads /dev/zero: 64 MiB resident under a 16 MiB limit.
  CommandResult run = Nodectl({"run", "--name", "hog", "--network", "none", "-m", "16m", "busybox",
                               "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=4"});
  EXPECT_EQ(run.exit_code, 137) << run.out << run.err;
  EXPECT_THAT(run.err, HasSubstr("OOM killer"));
  EXPECT_EQ(InspectField("hog", "oom_killed"), "true");
  EXPECT_EQ(InspectField("hog", "memory_bytes"), "16777216");
  // Under the limit the same command is fine.
  CommandResult fits = Nodectl({"run", "--rm", "--network", "none", "-m", "128m", "busybox", "dd",
                                "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"});
  EXPECT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(Nodectl({"rm", "hog"}).exit_code, 0);
}

TEST_F(LimitsE2E, BusyLoopUnderHalfACpuUsesAboutHalfACore) {
  std::string id = Detached({"--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done"});
  std::this_thread::sleep_for(500ms);  // Past the first period's burst.
  double cpu0 = CpuSeconds(id);
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);
  double cpu1 = CpuSeconds(id);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double rate = (cpu1 - cpu0) / wall;
  // The quota caps it at 0.5; a busy machine may give it less, never more.
  EXPECT_LE(rate, 0.55) << "cpu seconds per second";
  EXPECT_GE(rate, 0.2) << "cpu seconds per second (is the machine saturated?)";
  EXPECT_GT(ReadKey(CgroupFile(id, "cpu", "cpu.stat", "cpu.stat"), "nr_throttled"), 0);
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
}

TEST_F(LimitsE2E, ForkBombStopsAtThePidsLimit) {
  // An inner shell forks sleepers until fork fails (and then gives up); the outer one says so
  // and becomes the last sleeper without another fork.
  std::string id = Detached({"--pids-limit", "20", "busybox", "sh", "-c",
                             "sh -c 'for i in $(seq 60); do sleep 600 & done'; echo spawned; "
                             "exec sleep 600"});
  const std::string current = CgroupFile(id, "pids", "pids.current", "pids.current");
  int64_t peak = 0;
  for (int i = 0; i < 100; ++i) {
    peak = std::max(peak, ReadNumber(current));
    if (absl::StrContains(Nodectl({"logs", id}).out, "spawned")) break;
    std::this_thread::sleep_for(50ms);
  }
  peak = std::max(peak, ReadNumber(current));
  EXPECT_LE(peak, 20);
  EXPECT_GE(peak, 15);
  EXPECT_GT(ReadKey(CgroupFile(id, "pids", "pids.events", "pids.events"), "max"), 0);
  CommandResult logs = Nodectl({"logs", id});
  EXPECT_THAT(logs.out + logs.err, HasSubstr("spawned"));
  // The container itself is alive and controllable.
  EXPECT_EQ(InspectField(id, "state"), "CONTAINER_STATE_RUNNING");
  EXPECT_EQ(Nodectl({"rm", "-f", id}).exit_code, 0);
}

}  // namespace
}  // namespace nodeagent::testing
