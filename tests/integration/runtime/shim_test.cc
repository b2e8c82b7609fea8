// node-shim end to end on the real kernel (root): the binary is run the way the runtime runs
// it, on a busybox rootfs, and checked from outside (start line, exit.json, container.log,
// host mount table, cgroups) and from inside (what the container's commands print).

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/common/linux/files.h"
#include "services/runtime/linux/cgroup_driver.h"
#include "services/runtime/linux/cgroup_v2.h"
#include "services/runtime/linux/container_init.h"
#include "services/runtime/linux/exec_lookup.h"
#include "services/runtime/linux/shim_protocol.h"
#include "tests/integration/runtime/test_support.h"

namespace nodeagent::runtime {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testutil::BuildBusyboxRootfs;
using testutil::IsRoot;
using testutil::KillShim;
using testutil::MountTable;
using testutil::RemoveCgroupParent;
using testutil::RunShimToEnd;
using testutil::ShimProcess;
using testutil::ShimResult;
using testutil::StartShim;
using testutil::TempDir;
using testutil::WaitForFileContaining;
using testutil::WaitShim;
using testutil::WriteText;

// The status in a start line "error <code> <message>".
absl::Status StartError(const std::string& line) {
  if (!absl::StartsWith(line, "error ")) return absl::OkStatus();
  return DecodeInitError(line.substr(6));
}

class ShimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root (namespaces, mounts)";
    top_ = std::make_unique<TempDir>("nodeagent-shim-test");
    ASSERT_FALSE(top_->path().empty());
    lower_ = top_->path() + "/image";
    ASSERT_TRUE(BuildBusyboxRootfs(lower_).ok());
    upper_ = top_->path() + "/upper";
    ASSERT_TRUE(linux::MakeDirs(upper_).ok());
    ASSERT_TRUE(linux::MakeDirs(top_->path() + "/work").ok());
    mounts_before_ = MountTable();
  }

  void TearDown() override {
    for (const ShimProcess& shim : running_) KillShim(shim);
    for (ShimProcess& shim : running_) {
      if (shim.pid > 0) ::waitpid(shim.pid, nullptr, 0);
    }
    if (top_ != nullptr) {
      // Every mount lived in the container's namespace: nothing may be left on the host.
      EXPECT_EQ(MountTable(), mounts_before_);
    }
    top_.reset();
  }

  // A container on an overlay of the busybox image with this test's upper dir.
  ShimConfig Config(std::vector<std::string> args) {
    ShimConfig c;
    c.id = "c1";
    c.bundle = top_->path() + "/bundle";
    c.rootfs_mounts = {
        {"overlay",
         "overlay",
         "",
         {"lowerdir=" + lower_, "upperdir=" + upper_, "workdir=" + top_->path() + "/work"}}};
    c.hostname = "c1-host";
    c.args = std::move(args);
    c.env = {"PATH=/bin", "HOME=/root"};
    return c;
  }

  ShimConfig Sh(const std::string& script) { return Config({"sh", "-c", script}); }

  // Starts a container that stays up; stopped (and checked) by the fixture if the test does
  // not end it.
  ShimProcess Start(const ShimConfig& config) {
    auto shim = StartShim(config);
    EXPECT_TRUE(shim.ok()) << shim.status();
    if (!shim.ok()) return {};
    running_.push_back(*shim);
    return *shim;
  }

  std::string LogPath(const ShimConfig& c) { return c.bundle + "/" + kContainerLogFile; }

  std::unique_ptr<TempDir> top_;
  std::string lower_;
  std::string upper_;
  std::vector<std::string> mounts_before_;
  std::vector<ShimProcess> running_;
};

TEST_F(ShimTest, OutputExitCodeAndFiles) {
  ShimConfig c = Sh("echo hello; echo oops >&2; exit 3");
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(absl::StartsWith(r.shim.start_line, "ok ")) << r.shim.start_line;
  EXPECT_EQ(r.shim_status, 0);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.exit->exit_code, 3);
  EXPECT_EQ(r.exit->signal, 0);
  EXPECT_FALSE(r.exit->oom_killed);
  EXPECT_GT(r.exit->finished_unix_nanos, 0);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(*linux::ReadFile(c.bundle + "/" + kInitPidFile),
            absl::StrCat(r.shim.container_pid, "\n"));
  EXPECT_TRUE(linux::PathExists(c.bundle + "/" + kShimPidFile));
}

TEST_F(ShimTest, KilledBySignalIs128PlusSignal) {
  ShimConfig c = Sh("echo ready; exec sleep 1000");
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
  ASSERT_EQ(::kill(shim.container_pid, SIGKILL), 0);
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  auto exit = ParseExitRecord(*linux::ReadFile(c.bundle + "/" + kExitFile));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_EQ(exit->signal, SIGKILL);
}

TEST_F(ShimTest, PidOneIgnoresItsOwnKill) {
  // The kernel protects a pid namespace's init from signals sent from inside it that it has
  // no handler for, SIGKILL included: `kill -9 $$` in a shell that is PID 1 does nothing
  // (the same happens under Docker). Only a signal from outside (above) ends it.
  ShimResult r = RunShimToEnd(Sh("kill -9 $$; echo survived"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.exit->exit_code, 0);
  EXPECT_EQ(r.out, "survived\n");
}

TEST_F(ShimTest, ForwardsSigtermToTheContainer) {
  ShimConfig c =
      Sh("trap 'echo got TERM; exit 42' TERM; echo ready; "
         "while true; do sleep 0.05; done");
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
  ASSERT_EQ(::kill(shim.pid, SIGTERM), 0);
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  auto exit = ParseExitRecord(*linux::ReadFile(c.bundle + "/" + kExitFile));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 42);
  std::string out, err;
  ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
  EXPECT_THAT(out, HasSubstr("got TERM"));
}

TEST_F(ShimTest, PidNamespaceShowsOnlyTheContainer) {
  ShimResult r = RunShimToEnd(Sh("echo $$; ps -o pid,comm; exit 0"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0], "1");
  // Header, then the shell (PID 1) and ps itself: nothing of the host's.
  EXPECT_EQ(lines.size(), 4u) << r.out;
  EXPECT_THAT(lines[2], AllOf(HasSubstr("1 "), HasSubstr("sh")));
  EXPECT_THAT(lines[3], HasSubstr("ps"));
}

TEST_F(ShimTest, HostnameIsTheContainers) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  ShimResult r = RunShimToEnd(Sh("hostname"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.out, "c1-host\n");
  char after[256] = {};
  ASSERT_EQ(::gethostname(after, sizeof(after) - 1), 0);
  EXPECT_STREQ(host, after);
}

TEST_F(ShimTest, HostFilesAreNotReachable) {
  std::string marker = top_->path() + "/host-marker";
  ASSERT_TRUE(WriteText(marker, "secret\n").ok());
  ShimResult r = RunShimToEnd(
      Sh(absl::StrCat("M=", marker, "; ", "test -e $M && echo LEAK-direct; ",
                      "test -e /proc/1/root$M && echo LEAK-proc1root; ",
                      "test -e /proc/self/root$M && echo LEAK-procselfroot; ",
                      "cd /; cd ../../../../..; test -e .$M && echo LEAK-dotdot; pwd; ",
                      "cd /proc/1/root/../../..; test -e .$M && echo LEAK-procdotdot; ",
                      "cat /proc/1/mountinfo | grep -c . >/dev/null; echo done")));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_THAT(r.out, HasSubstr("done"));
  EXPECT_THAT(r.out, Not(HasSubstr("LEAK")));
  EXPECT_THAT(r.out, HasSubstr("/\n"));
}

TEST_F(ShimTest, WritesLandInTheUpperDirAndTheImageIsUnchanged) {
  ShimResult r =
      RunShimToEnd(Sh("echo data > /newfile; echo changed > /etc/motd; "
                      "rm /bin/vi; cat /etc/motd"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.exit->exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "changed\n");
  EXPECT_EQ(*linux::ReadFile(upper_ + "/newfile"), "data\n");
  EXPECT_EQ(*linux::ReadFile(upper_ + "/etc/motd"), "changed\n");
  EXPECT_FALSE(linux::PathExists(lower_ + "/newfile"));
  EXPECT_EQ(*linux::ReadFile(lower_ + "/etc/motd"), "lower motd\n");
  EXPECT_TRUE(linux::PathExists(lower_ + "/bin/vi"));
  struct stat st;
  ASSERT_EQ(::lstat((upper_ + "/bin/vi").c_str(), &st), 0);  // The whiteout.
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(ShimTest, HostMountTableGainsNothing) {
  ShimConfig c = Sh("echo ready; exec sleep 1000");
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
  EXPECT_EQ(MountTable(), mounts_before_) << "while the container runs";
  // ... while the container's own table has exactly the rootfs, /proc, /dev and /sys: the
  // old root is gone from it.
  auto inside = linux::ReadFile(absl::StrCat("/proc/", shim.container_pid, "/mountinfo"));
  ASSERT_TRUE(inside.ok());
  std::vector<std::string> mount_points;
  for (absl::string_view line : absl::StrSplit(*inside, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    mount_points.push_back(fields.at(4));
  }
  EXPECT_THAT(mount_points,
              ElementsAre("/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"))
      << *inside;
  EXPECT_THAT(*inside, HasSubstr(" /sys ro,"));
  ASSERT_EQ(::kill(shim.container_pid, SIGKILL), 0);
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  EXPECT_EQ(MountTable(), mounts_before_) << "after exit";
}

TEST_F(ShimTest, BindRootfs) {
  ShimConfig c = Sh("cat /etc/motd");
  c.rootfs_mounts = {{"bind", lower_, "", {"rbind"}}};
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.out, "lower motd\n");
}

TEST_F(ShimTest, MissingCommandIsNotFoundAndLeavesNothing) {
  // In a cgroup of its own, so that "nothing left running" can be checked exactly.
  auto driver = DetectCgroupDriver("/sys/fs/cgroup", absl::StrCat("nodeagent-test-", ::getpid()));
  ASSERT_TRUE(driver.ok()) << driver.status();
  auto dirs = (*driver)->Create("c1", {});
  ASSERT_TRUE(dirs.ok()) << dirs.status();
  ShimConfig c = Config({"nosuch"});
  c.cgroup_dirs = *dirs;
  ShimResult r = RunShimToEnd(c);
  EXPECT_EQ(r.shim.start_line, "error 5 exec \"nosuch\": executable file not found in $PATH");
  EXPECT_EQ(r.shim_status, 1 << 8);  // node-shim exited with 1.
  EXPECT_FALSE(linux::PathExists(c.bundle + "/" + kExitFile));
  EXPECT_EQ(StartErrorExitCode(StartError(r.shim.start_line)), 127);
  for (const std::string& dir : *dirs) {
    EXPECT_EQ(*linux::ReadFile(dir + "/cgroup.procs"), "") << dir;
  }
  EXPECT_TRUE((*driver)->Destroy("c1").ok());
  RemoveCgroupParent(**driver);
}

// The container's cgroups, as the runtime would make them: v1 here on hybrid hosts (the
// child writes cgroup.procs), and v2 wherever a cgroup2 mount exists (clone3 places the child
// with CLONE_INTO_CGROUP). Inside, the cgroup namespace shows each as "/".
TEST_F(ShimTest, CgroupsAreJoinedAndNamespaced) {
  std::string parent = absl::StrCat("nodeagent-test-", ::getpid(), "-join");
  std::vector<std::unique_ptr<CgroupDriver>> drivers;
  auto detected = DetectCgroupDriver("/sys/fs/cgroup", parent);
  ASSERT_TRUE(detected.ok()) << detected.status();
  drivers.push_back(std::move(*detected));
  if (drivers[0]->Version() == "v1" &&
      linux::PathExists("/sys/fs/cgroup/unified/cgroup.controllers")) {
    auto v2 = NewCgroupV2Driver("/sys/fs/cgroup/unified", parent);
    ASSERT_TRUE(v2.ok()) << v2.status();
    drivers.push_back(std::move(*v2));
  }
  for (auto& driver : drivers) {
    SCOPED_TRACE(driver->Version());
    auto dirs = driver->Create("c1", {});
    ASSERT_TRUE(dirs.ok()) << dirs.status();
    ShimConfig c = Sh("cat /proc/self/cgroup; echo ready; exec sleep 1000");
    c.bundle = absl::StrCat(top_->path(), "/bundle-", driver->Version());
    c.cgroup_dirs = *dirs;
    ShimProcess shim = Start(c);
    ASSERT_GT(shim.container_pid, 0) << shim.start_line;
    ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
    for (const std::string& dir : *dirs) {
      EXPECT_THAT(*linux::ReadFile(dir + "/cgroup.procs"),
                  HasSubstr(absl::StrCat(shim.container_pid, "\n")))
          << dir;
    }
    // The container's view (printed before "ready"): each cgroup it was placed in is its "/".
    std::string out, err;
    ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
    if (driver->Version() == "v2") {
      EXPECT_THAT(out, HasSubstr("0::/\n"));
    } else {
      EXPECT_THAT(out,
                  AllOf(HasSubstr(":memory:/\n"), HasSubstr(":pids:/\n"), HasSubstr(":cpu:/\n")));
    }
    // Destroying the cgroup ends the container.
    ASSERT_TRUE(driver->Destroy("c1").ok());
    ASSERT_EQ(*WaitShim(running_.back()), 0);
    auto exit = ParseExitRecord(*linux::ReadFile(c.bundle + "/" + kExitFile));
    ASSERT_TRUE(exit.ok());
    EXPECT_EQ(exit->exit_code, 137);
    RemoveCgroupParent(*driver);
  }
}

TEST_F(ShimTest, NonExecutableCommandIsPermissionDenied) {
  ShimResult r = RunShimToEnd(Config({"/etc/motd"}));
  EXPECT_EQ(r.shim.start_line, "error 7 exec \"/etc/motd\": permission denied");
  EXPECT_EQ(r.shim_status, 1 << 8);
  EXPECT_EQ(StartErrorExitCode(StartError(r.shim.start_line)), 126);
}

TEST_F(ShimTest, SetupErrorsNameWhatFailed) {
  ShimConfig c = Sh("true");
  c.mounts = {{"bind", top_->path() + "/no-such-dir", "/data", {"rbind"}}};
  ShimResult r = RunShimToEnd(c);
  EXPECT_EQ(
      r.shim.start_line,
      absl::StrCat("error 5 mount \"", top_->path(),
                   "/no-such-dir\" -> \"/data\" (MS_BIND|MS_REC): No such file or directory"));
  EXPECT_EQ(StartErrorExitCode(StartError(r.shim.start_line)), 125);
  ShimConfig bad_overlay = Sh("true");
  bad_overlay.rootfs_mounts[0].options.push_back("nosuchoption=1");
  r = RunShimToEnd(bad_overlay);
  EXPECT_THAT(r.shim.start_line, AllOf(HasSubstr("error 3 mount \"overlay\" -> \""),
                                       HasSubstr("/rootfs\" (overlay, 0, "),
                                       HasSubstr("nosuchoption=1\"): Invalid argument")));
}

TEST_F(ShimTest, OnlyLoopbackAndItIsUp) {
  ShimResult r =
      RunShimToEnd(Sh("tail -n +3 /proc/net/dev | cut -d: -f1; ls /sys/class/net; "
                      "cat /sys/class/net/lo/flags"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  // /proc/net/dev lists "lo" only; sysfs too; IFF_UP (0x1) | IFF_LOOPBACK (0x8).
  EXPECT_EQ(r.out, "    lo\nlo\n0x9\n");
}

TEST_F(ShimTest, MinimalDevProcAndReadOnlySys) {
  ShimResult r = RunShimToEnd(
      Sh("echo x > /dev/null && head -c 5 /dev/zero | wc -c; "
         "for d in null zero full random urandom tty; do test -c /dev/$d || echo missing $d; done; "
         "test -c /dev/pts/ptmx && test -L /dev/ptmx && echo pts-ok; "
         "echo shm > /dev/shm/x && cat /dev/shm/x; "
         "for l in fd stdin stdout stderr; do readlink /dev/$l; done; "
         "touch /sys/x 2>/dev/null || echo sys-ro; "
         "test -d /dev/mqueue && echo mq-ok; "
         "ls -ld /dev/null | cut -c1-10; "
         "cat /proc/self/cgroup >/dev/null && echo proc-ok"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.out,
            "5\npts-ok\nshm\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n"
            "/proc/self/fd/2\nsys-ro\nmq-ok\ncrw-rw-rw-\nproc-ok\n")
      << r.err;
}

TEST_F(ShimTest, ReadOnlyRootfsStillCreatesTheWorkingDir) {
  ShimConfig c =
      Sh("pwd; touch /x 2>&1 | grep -o 'Read-only file system'; "
         "echo ok > /dev/shm/y && cat /dev/shm/y");
  c.readonly_rootfs = true;
  c.cwd = "/work/dir";
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.out, "/work/dir\nRead-only file system\nok\n");
}

TEST_F(ShimTest, EnvironmentAndWorkingDir) {
  ShimConfig c = Sh("echo $FOO; pwd; env | sort");
  c.env = {"PATH=/bin", "FOO=bar baz"};
  c.cwd = "/srv";
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_THAT(r.out, HasSubstr("bar baz\n/srv\n"));
  EXPECT_THAT(r.out, HasSubstr("FOO=bar baz\nPATH=/bin\n"));
}

TEST_F(ShimTest, ExtraMountsStayInsideTheRootfs) {
  std::string data = top_->path() + "/data";
  ASSERT_TRUE(linux::MakeDirs(data).ok());
  ASSERT_TRUE(WriteText(data + "/file", "from host\n").ok());
  // An image symlink aiming a mount destination at the host: it must resolve inside.
  std::string outside = top_->path() + "/outside";
  ASSERT_TRUE(linux::MakeDirs(outside).ok());
  ASSERT_EQ(::symlink(("../../../../../../../../" + outside).c_str(), (upper_ + "/escape").c_str()),
            0);
  ShimConfig c =
      Sh("cat /data/file; touch /data/new 2>/dev/null || echo data-ro; "
         "echo t > /scratch/t && cat /scratch/t; "
         "cat /escape/sub/file; cat /single");
  c.mounts = {{"bind", data, "/data", {"rbind", "ro", "rprivate"}},
              {"tmpfs", "tmpfs", "/scratch", {"size=1m", "nosuid"}},
              {"bind", data, "/escape/sub", {"bind"}},
              {"bind", data + "/file", "/single", {"bind", "ro"}}};
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.out, "from host\ndata-ro\nt\nfrom host\nfrom host\n") << r.err;
  EXPECT_FALSE(linux::PathExists(outside + "/sub")) << "a mount followed a symlink out";
  EXPECT_FALSE(linux::PathExists(data + "/new"));
}

TEST_F(ShimTest, NoHostFdReachesTheContainer) {
  int leak = ::open("/etc/hostname", O_RDONLY);  // Deliberately without O_CLOEXEC.
  ASSERT_GE(leak, 0);
  ShimConfig c = Config({"ls", "/proc/self/fd"});
  auto shim = StartShim(c, leak);
  ::close(leak);
  ASSERT_TRUE(shim.ok());
  running_.push_back(*shim);
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  std::string out, err;
  ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
  // 0-2 and the directory ls reads.
  EXPECT_EQ(out, "0\n1\n2\n3\n");
}

TEST_F(ShimTest, CommandStartsWithCleanProcessState) {
  // node-shim blocks the signals it forwards and ignores SIGPIPE; none of that may be
  // inherited. grep runs as the container's first process itself.
  ShimResult r =
      RunShimToEnd(Config({"grep", "-E", "^(SigBlk|SigIgn|NSpid)", "/proc/self/status"}));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_THAT(r.out, HasSubstr("SigBlk:\t0000000000000000\n"));
  EXPECT_THAT(r.out, HasSubstr("SigIgn:\t0000000000000000\n"));
  ShimConfig umask = Sh("umask");
  umask.bundle += "-umask";
  r = RunShimToEnd(umask);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.out, "0022\n");
}

TEST_F(ShimTest, LargeOutputIsKeptWhole) {
  ShimResult r =
      RunShimToEnd(Sh("i=0; while [ $i -lt 2000 ]; do "
                      "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; "
                      "i=$((i+1)); done; head -c 300000 /dev/zero | tr '\\0' e >&2"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2000u);
  EXPECT_EQ(lines[1999].substr(0, 10), "line-1999-");
  EXPECT_EQ(r.err, std::string(300000, 'e'));
}

}  // namespace
}  // namespace nodeagent::runtime
