// node-shim end to end on the real kernel (root): the binary is run the way the runtime runs
// it, on a busybox rootfs, and checked from outside (start line, exit.json, container.log,
// host mount table, cgroups) and from inside (what the container's commands print).

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
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
using testutil::Attacher;
using testutil::AttachResult;
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
    // Masked and read-only paths (below /proc and /sys) are checked in Hardening*.
    if (absl::StartsWith(fields.at(4), "/proc/") || absl::StartsWith(fields.at(4), "/sys/")) {
      continue;
    }
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

// The namespace of a process, as readlink shows it: "net:[4026531840]".
std::string NsOf(pid_t pid, const char* type) {
  char buf[64] = {};
  ssize_t n = ::readlink(absl::StrCat("/proc/", pid, "/ns/", type).c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

std::vector<ShimNamespace> DefaultWith(const std::string& type, const std::string& path,
                                       bool drop = false) {
  std::vector<ShimNamespace> out;
  for (ShimNamespace ns : DefaultNamespaces()) {
    if (ns.type == type) {
      if (drop) continue;
      ns.path = path;
    }
    out.push_back(ns);
  }
  return out;
}

TEST_F(ShimTest, JoinsANetworkNamespaceByPath) {
  // Another container's netns, by /proc/PID/ns/net, with a dummy link to recognise it.
  ShimConfig first = Sh("echo ready; exec sleep 1000");
  first.bundle += "-first";
  ShimProcess a = Start(first);
  ASSERT_GT(a.container_pid, 0) << a.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(first), "ready"));
  ShimConfig second = Sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname");
  second.namespaces = DefaultWith("net", absl::StrCat("/proc/", a.container_pid, "/ns/net"));
  ShimResult r = RunShimToEnd(second);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  ASSERT_FALSE(NsOf(a.container_pid, "net").empty());
  // The same netns; its own (new) uts namespace.
  EXPECT_THAT(r.out, testing::StartsWith(NsOf(a.container_pid, "net") + "\n"));
  EXPECT_THAT(r.out, Not(HasSubstr(NsOf(a.container_pid, "uts"))));
  EXPECT_THAT(r.out, HasSubstr("c1-host\n"));
}

TEST_F(ShimTest, JoinsABindMountedNetnsInAPrivateMountNamespace) {
  // `ip netns add` style: a netns kept by a bind mount, all inside a private mount namespace
  // (unshare -m) so that the host's mount table never sees it.
  std::string nsfile = top_->path() + "/netns";
  ASSERT_TRUE(WriteText(nsfile, "").ok());
  ShimConfig c = Sh("cat /sys/class/net/lo/mtu");
  c.namespaces = DefaultWith("net", nsfile);
  ASSERT_TRUE(linux::MakeDirs(c.bundle).ok());
  ASSERT_TRUE(WriteText(c.bundle + "/" + kShimConfigFile, SerializeShimConfig(c)).ok());
  std::string script = absl::StrCat(
      "set -e; mount --make-rprivate /; unshare --net=", nsfile, " ip link set lo mtu 1234; ",
      // fd 3 is the start pipe node-shim expects; its start line goes to stdout.
      NODE_SHIM_PATH, " --bundle ", c.bundle, " 3>&1 >/dev/null 2>&1; cat ", c.bundle,
      "/exit.json; echo; umount ", nsfile, " 2>&1");
  std::string cmd = absl::StrCat("unshare -m sh -c '", script, "'");
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string got;
  char buf[512];
  while (::fgets(buf, sizeof(buf), p) != nullptr) got += buf;
  int status = ::pclose(p);
  ASSERT_EQ(status, 0) << got;
  EXPECT_THAT(got, HasSubstr("ok "));
  EXPECT_THAT(got, HasSubstr("\"exit_code\":0"));
  std::string out, err;
  ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
  EXPECT_EQ(out, "1234\n") << err;  // The mark set in that netns.
}

TEST_F(ShimTest, HostNetworkAndHostIpcWhenAbsent) {
  ShimConfig c =
      Sh("readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; "
         "readlink /proc/self/ns/pid");
  c.namespaces = {{"pid", ""}, {"mnt", ""}, {"uts", ""}, {"cgroup", ""}};
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.out, absl::StrCat(NsOf(::getpid(), "net"), "\n", NsOf(::getpid(), "ipc"), "\n",
                                r.out.substr(r.out.rfind("pid:"))));
  EXPECT_THAT(r.out, Not(HasSubstr(NsOf(::getpid(), "pid"))));
}

TEST_F(ShimTest, IpcObjectsAreSharedOnlyWhenIpcIsJoined) {
  // A POSIX message queue (busybox-static has no ipcmk): /dev/mqueue shows the queues of
  // the ipc namespace of whoever mounted it.
  ShimConfig owner = Sh("touch /dev/mqueue/q-shared && echo ready; exec sleep 1000");
  owner.bundle += "-owner";
  ShimProcess a = Start(owner);
  ASSERT_GT(a.container_pid, 0) << a.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(owner), "ready"));
  ShimConfig joined = Sh("ls /dev/mqueue; readlink /proc/self/ns/ipc");
  joined.bundle += "-joined";
  joined.namespaces = DefaultWith("ipc", absl::StrCat("/proc/", a.container_pid, "/ns/ipc"));
  ShimResult r = RunShimToEnd(joined);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.out, absl::StrCat("q-shared\n", NsOf(a.container_pid, "ipc"), "\n"));
  ShimConfig isolated = Sh("ls /dev/mqueue | grep -c q-shared");
  isolated.bundle += "-isolated";
  r = RunShimToEnd(isolated);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.out, "0\n");
}

TEST_F(ShimTest, BadNamespacesAreClearErrors) {
  ShimConfig c = Sh("true");
  c.namespaces = DefaultWith("net", top_->path() + "/no-such-netns");
  ShimResult r = RunShimToEnd(c);
  EXPECT_THAT(r.shim.start_line, AllOf(HasSubstr("error 5 "), HasSubstr("no-such-netns")));
  c.namespaces = DefaultWith("mnt", "", /*drop=*/true);
  r = RunShimToEnd(c);
  EXPECT_THAT(r.shim.start_line, HasSubstr("error 3 namespace \"mnt\" must be listed"));
  c.namespaces = DefaultWith("net", "/etc/hostname");  // Not a namespace file.
  r = RunShimToEnd(c);
  EXPECT_THAT(r.shim.start_line,
              AllOf(HasSubstr("error 3 join namespace"), HasSubstr("Invalid argument")));
}

TEST_F(ShimTest, TtyAttachStdinResizeAndExit) {
  ShimConfig c = Sh("tty; stty size; read x; echo got:$x; exit 7");
  c.tty = true;
  c.tty_rows = 30;
  c.tty_cols = 100;
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  auto a = Attacher::Connect(c.bundle);
  ASSERT_TRUE(a.ok()) << a.status();
  // The first attacher gets what came before it (replay).
  ASSERT_TRUE(a->WaitForOutput("30 100")) << a->seen().out;
  ASSERT_TRUE(a->Send(kAttachStdin, "hello\n").ok());
  AttachResult r = a->ReadToExit();
  EXPECT_THAT(r.out, HasSubstr("/dev/pts/0"));
  EXPECT_THAT(r.out, HasSubstr("got:hello"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status();
  EXPECT_EQ(r.exit->exit_code, 7);
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  std::string out, err;
  ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
  EXPECT_THAT(out, HasSubstr("got:hello"));  // The log has it too.
  EXPECT_FALSE(linux::PathExists(c.bundle + "/" + kAttachSocketFile));
}

TEST_F(ShimTest, TtyResizeAndCtrlCReachTheForegroundGroup) {
  // Under init: a shell as PID 1 would be immune to SIGINT.
  ShimConfig c =
      Sh("trap 'echo winch; stty size' WINCH; echo ready; "
         "while true; do sleep 0.05; done");
  c.tty = true;
  c.init = true;
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  auto a = Attacher::Connect(c.bundle);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->WaitForOutput("ready"));
  ASSERT_TRUE(a->Resize(50, 132).ok());
  EXPECT_TRUE(a->WaitForOutput("50 132")) << a->seen().out;
  ASSERT_TRUE(a->Send(kAttachStdin, "\x03").ok());  // ^C: SIGINT to the foreground group.
  AttachResult r = a->ReadToExit();
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << r.out;
  EXPECT_EQ(r.exit->exit_code, 128 + SIGINT);
}

TEST_F(ShimTest, StdinPipeSeveralAttachersAndCloseStdin) {
  ShimConfig c = Config({"cat"});
  c.stdin_open = true;
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  auto a = Attacher::Connect(c.bundle);
  auto b = Attacher::Connect(c.bundle);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->Send(kAttachStdin, "one\n").ok());
  ASSERT_TRUE(a->WaitForOutput("one\n"));
  ASSERT_TRUE(b->WaitForOutput("one\n"));
  ASSERT_TRUE(b->Send(kAttachStdin, "two\n").ok());
  ASSERT_TRUE(b->Send(kAttachCloseStdin, "").ok());
  AttachResult ra = a->ReadToExit();
  AttachResult rb = b->ReadToExit();
  EXPECT_EQ(ra.out, "one\ntwo\n");
  EXPECT_EQ(rb.out, "one\ntwo\n");
  ASSERT_TRUE(ra.exit.ok() && rb.exit.ok());
  EXPECT_EQ(ra.exit->exit_code, 0);
}

TEST_F(ShimTest, ExecJoinsEveryNamespaceAndReportsExit) {
  ShimConfig c = Sh("echo ready; exec sleep 1000");
  c.env = {"PATH=/bin", "FROM=config"};
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
  ShimExecProcess p;
  p.args = {"sh", "-c",
            "echo pid=$$; hostname; pwd; echo $FROM; for t in net ipc uts pid mnt cgroup; do "
            "readlink /proc/self/ns/$t; done; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
            "ls /proc/self/fd | tr '\\n' ' '; echo; exit 5"};
  p.cwd = "/etc";
  auto exec = testutil::StartExecShim(c.bundle, "e1", p);
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(absl::StartsWith(exec->start_line, "ok ")) << exec->start_line;
  running_.push_back(*exec);
  auto a = Attacher::Connect(c.bundle + "/exec-e1");
  ASSERT_TRUE(a.ok()) << a.status();
  AttachResult r = a->ReadToExit();
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << r.out << r.err;
  EXPECT_EQ(r.exit->exit_code, 5);
  std::string expected_ns;
  for (const char* t : {"net", "ipc", "uts", "pid", "mnt", "cgroup"}) {
    expected_ns += NsOf(shim.container_pid, t) + "\n";
  }
  EXPECT_THAT(r.out, HasSubstr("c1-host\n/etc\nconfig\n" + expected_ns + "sleep 1000 \n"));
  EXPECT_THAT(r.out, Not(HasSubstr("pid=1\n")));
  EXPECT_THAT(r.out, HasSubstr("\n0 1 2 3 \n"));  // No fd of node-shim's.
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  auto exit = ParseExitRecord(*linux::ReadFile(c.bundle + "/exec-e1/" + kExitFile));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 5);
  // The exec's output is not the container's log.
  std::string out, err;
  ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
  EXPECT_EQ(out, "ready\n");
}

TEST_F(ShimTest, ExecWithTtyAndMissingCommand) {
  ShimConfig c = Sh("echo ready; exec sleep 1000");
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
  ShimExecProcess p;
  p.args = {"sh", "-c", "tty; read x; echo got:$x"};
  p.tty = true;
  auto exec = testutil::StartExecShim(c.bundle, "t1", p);
  ASSERT_TRUE(exec.ok() && absl::StartsWith(exec->start_line, "ok ")) << exec->start_line;
  running_.push_back(*exec);
  auto a = Attacher::Connect(c.bundle + "/exec-t1");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->WaitForOutput("/dev/pts/"));
  ASSERT_TRUE(a->Send(kAttachStdin, "x\n").ok());
  AttachResult r = a->ReadToExit();
  EXPECT_THAT(r.out, HasSubstr("got:x"));
  ASSERT_TRUE(r.exit.ok());
  EXPECT_EQ(r.exit->exit_code, 0);

  p = {};
  p.args = {"nosuch"};
  auto missing = testutil::StartExecShim(c.bundle, "m1", p);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->start_line, "error 5 exec \"nosuch\": executable file not found in $PATH");
  running_.push_back(*missing);
}

TEST_F(ShimTest, ExecIntoAStoppedContainerFails) {
  ShimConfig c = Sh("exit 0");
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok());
  ShimExecProcess p;
  p.args = {"true"};
  auto exec = testutil::StartExecShim(c.bundle, "late", p);
  ASSERT_TRUE(exec.ok());
  running_.push_back(*exec);
  EXPECT_EQ(exec->start_line, "error 9 container c1 is not running");
}

TEST_F(ShimTest, InitIsPidOneReapsAndSetsThePrompt) {
  ShimConfig c = Config({"sh", "-i"});
  c.init = true;
  c.init_prompt = "c1> ";
  c.tty = true;
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  auto a = Attacher::Connect(c.bundle);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->WaitForOutput("c1> ")) << a->seen().out;
  // A zombie-to-be: an orphan whose parent exits at once is reaped by init (PID 1).
  ASSERT_TRUE(a->Send(kAttachStdin,
                      "sh -c 'sleep 0.2 &' ; echo $$; "
                      "cat /proc/1/status | grep -c zombie; sleep 0.5; "
                      "ps -o stat,comm | grep -c Z; exit 3\n")
                  .ok());
  AttachResult r = a->ReadToExit();
  ASSERT_TRUE(r.exit.ok()) << r.out;
  EXPECT_EQ(r.exit->exit_code, 3);
  EXPECT_THAT(r.out, HasSubstr("\n2\r\n"));       // The shell is PID 2: init is PID 1.
  EXPECT_THAT(r.out, HasSubstr("\n0\r\n0\r\n"));  // No zombie left.
}

TEST_F(ShimTest, InitForwardsSignalsAndExitsWithTheChild) {
  ShimConfig c =
      Sh("trap 'echo got TERM; exit 42' TERM; echo ready; "
         "while true; do sleep 0.05; done");
  c.init = true;
  ShimProcess shim = Start(c);
  ASSERT_GT(shim.container_pid, 0) << shim.start_line;
  ASSERT_TRUE(WaitForFileContaining(LogPath(c), "ready"));
  ASSERT_EQ(::kill(shim.pid, SIGTERM), 0);
  ASSERT_EQ(*WaitShim(running_.back()), 0);
  auto exit = ParseExitRecord(*linux::ReadFile(c.bundle + "/" + kExitFile));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 42);
}

TEST_F(ShimTest, HardeningByDefault) {
  ShimResult r = RunShimToEnd(
      Sh("grep -E '^(CapBnd|CapEff|CapInh|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; "
         "unshare -U true 2>/dev/null && echo LEAK-userns; "
         "mount -t tmpfs t /tmp 2>/dev/null && echo LEAK-mount; "
         "cat /proc/kcore 2>/dev/null | head -c 1 | grep -q . && echo LEAK-kcore; "
         "test -s /proc/keys && echo LEAK-keys; "
         "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo LEAK-sysrq; "
         "echo x > /proc/sys/kernel/hostname 2>/dev/null && echo LEAK-procsys; "
         "ls /proc/self/fd | tr '\\n' ' '; echo done"));
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << r.shim.start_line;
  // Docker's 14 default capabilities: 0x00000000a80425fb.
  EXPECT_THAT(r.out, HasSubstr("CapEff:\t00000000a80425fb\n"));
  EXPECT_THAT(r.out, HasSubstr("CapBnd:\t00000000a80425fb\n"));
  EXPECT_THAT(r.out, HasSubstr("CapInh:\t0000000000000000\n"));
  EXPECT_THAT(r.out, HasSubstr("CapAmb:\t0000000000000000\n"));
  EXPECT_THAT(r.out, HasSubstr("NoNewPrivs:\t1\n"));
  EXPECT_THAT(r.out, HasSubstr("Seccomp:\t2\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("LEAK")));
  EXPECT_THAT(r.out, HasSubstr("0 1 2 3 done\n"));
}

TEST_F(ShimTest, PrivilegedCapAddDropAndUser) {
  ShimConfig priv =
      Sh("grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
         "mount -t tmpfs t /tmp && echo mounted");
  priv.privileged = true;
  priv.bundle += "-priv";
  ShimResult r = RunShimToEnd(priv);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << r.shim.start_line;
  // Every capability node-shim has (this host may withhold some from root).
  std::string own = *linux::ReadFile("/proc/self/status");
  size_t at = own.find("CapEff:");
  EXPECT_THAT(r.out, HasSubstr(own.substr(at, own.find('\n', at) - at + 1)));
  EXPECT_THAT(r.out, HasSubstr("Seccomp:\t0\n"));
  EXPECT_THAT(r.out, HasSubstr("mounted\n"));

  ASSERT_TRUE(linux::MakeDirs(upper_ + "/etc").ok());
  ASSERT_TRUE(WriteText(upper_ + "/etc/passwd",
                        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
                  .ok());
  ASSERT_TRUE(
      WriteText(upper_ + "/etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\n").ok());
  ShimConfig user = Sh("id; echo $HOME; grep CapEff /proc/self/status");
  user.user = "app";
  user.env = {"PATH=/bin"};  // HOME comes from /etc/passwd when the env has none.
  user.bundle += "-user";
  r = RunShimToEnd(user);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << r.shim.start_line;
  EXPECT_EQ(r.out,
            "uid=1000(app) gid=1000(app) groups=2000(extra)\n/home/app\n"
            "CapEff:\t0000000000000000\n");

  ShimConfig caps = Sh("grep CapEff /proc/self/status; id -u");
  caps.cap_drop = {"ALL"};
  caps.cap_add = {"net_admin", "CAP_SYS_TIME"};
  caps.user = "7:8";
  caps.bundle += "-caps";
  r = RunShimToEnd(caps);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << r.shim.start_line;
  EXPECT_EQ(r.out, "CapEff:\t0000000000000000\n7\n");  // Non-root: none survive exec.

  ShimConfig bad = Sh("true");
  bad.cap_add = {"CAP_NOPE"};
  bad.bundle += "-bad";
  r = RunShimToEnd(bad);
  EXPECT_EQ(r.shim.start_line, "error 3 unknown capability \"CAP_NOPE\"");
  bad.user = "nobody-here";
  bad.cap_add.clear();
  r = RunShimToEnd(bad);
  EXPECT_THAT(r.shim.start_line, HasSubstr("error 5 user \"nobody-here\": no such user"));
}

}  // namespace
}  // namespace nodeagent::runtime

namespace nodeagent::runtime {
namespace {

// Runs `script` with sh in a mount namespace of the test's own (unshare -m, private from the
// host), returns what it printed; `status` gets its exit status.
std::string RunInPrivateMountNamespace(const std::string& script, int* status) {
  std::string cmd = absl::StrCat("unshare -m --propagation private sh -c '", script, "' 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string got;
  char buf[512];
  while (::fgets(buf, sizeof(buf), p) != nullptr) got += buf;
  *status = ::pclose(p);
  return got;
}

TEST_F(ShimTest, UserNamespaceRootIsUnprivilegedOnIdMappedLayers) {
  ASSERT_TRUE(WriteText(lower_ + "/etc/motd", "from the image\n").ok());
  ShimConfig c =
      Sh("id -u; id -g; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox /etc/motd /; "
         "echo new > /newfile && echo created; echo more >> /etc/motd && echo appended; "
         "mkdir /d && echo dir; cat /proc/self/status | grep CapEff");
  c.namespaces = DefaultNamespaces();
  c.namespaces->push_back({"user", ""});
  c.uid_mappings = {{0, 300000, 65536}};
  c.gid_mappings = {{0, 300000, 65536}};
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.exit->exit_code, 0) << r.err;
  EXPECT_THAT(r.out, testing::StartsWith("0\n0\n"));
  EXPECT_THAT(r.out, testing::ContainsRegex("0 +300000 +65536"));
  // The image's files (host uid 0) are root's inside: id-mapped, not chowned.
  EXPECT_THAT(r.out, HasSubstr("0:0\n0:0\n0:0\ncreated\nappended\ndir\n")) << r.err;
  EXPECT_THAT(r.out, HasSubstr("00000000a80425fb"));  // Docker's set, in its own namespace.
  // On the host: what root made inside belongs to the mapped range; the image is untouched.
  struct stat st;
  ASSERT_EQ(::stat((upper_ + "/newfile").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000u);
  EXPECT_EQ(st.st_gid, 300000u);
  ASSERT_EQ(::stat((upper_ + "/etc/motd").c_str(), &st), 0);  // Copied up.
  EXPECT_EQ(st.st_uid, 300000u);
  ASSERT_EQ(::stat((upper_ + "/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000u);
  ASSERT_EQ(::stat(upper_.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 300000u);
  ASSERT_EQ(::stat((lower_ + "/etc/motd").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(*linux::ReadFile(lower_ + "/etc/motd"), "from the image\n");
  EXPECT_EQ(*linux::ReadFile(upper_ + "/etc/motd"), "from the image\nmore\n");
}

TEST_F(ShimTest, UserNamespaceContainerCannotActOnTheHost) {
  // Even --privileged (every capability, no seccomp) is root of its own namespace only.
  // The source lies below a directory the mapped root may not enter (0700, host root's):
  // node-shim clones it. Its files read as nobody's inside: world-readable, not writable.
  std::string shared = top_->path() + "/shared";
  ASSERT_TRUE(linux::MakeDirs(shared, 0755).ok());
  ::chmod(top_->path().c_str(), 0700);
  std::string host_file = shared + "/host-owned";
  ASSERT_TRUE(WriteText(host_file, "x", 0644).ok());
  ShimConfig c =
      Sh("mkdir /m && mount -t tmpfs t /m && echo mounted; cat /data/host-owned; "
         "echo y > /data/host-owned 2>/dev/null || echo refused");
  c.privileged = true;
  c.namespaces = DefaultNamespaces();
  c.namespaces->push_back({"user", ""});
  c.uid_mappings = {{0, 300000, 65536}};
  c.gid_mappings = {{0, 300000, 65536}};
  c.mounts = {{"bind", shared, "/data", {"rbind"}}};
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_EQ(r.out, "mounted\nxrefused\n") << r.err;
  EXPECT_EQ(*linux::ReadFile(host_file), "x");
}

TEST_F(ShimTest, BindPropagationBothWaysInAPrivateTestNamespace) {
  // Bind sources are tmpfs mounts of the test's own mount namespace, made shared there; the
  // host's tree is never touched. rshared: a mount made inside appears on the (test's) host
  // side; rslave: a mount made on the host side appears inside.
  std::string shared_src = top_->path() + "/shared-src";
  std::string slave_src = top_->path() + "/slave-src";
  ASSERT_TRUE(linux::MakeDirs(shared_src).ok());
  ASSERT_TRUE(linux::MakeDirs(slave_src).ok());
  ShimConfig c =
      Sh("mkdir -p /shared/inner && mount -t tmpfs inner /shared/inner && "
         "echo from-container > /shared/inner/f; "
         "i=0; while [ ! -e /slave/sub/hostfile ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); "
         "done; cat /slave/sub/hostfile");
  c.privileged = true;  // To mount inside.
  c.mounts = {{"bind", shared_src, "/shared", {"rbind", "rshared"}},
              {"bind", slave_src, "/slave", {"rbind", "rslave"}}};
  ASSERT_TRUE(linux::MakeDirs(c.bundle).ok());
  ASSERT_TRUE(WriteText(c.bundle + "/" + kShimConfigFile, SerializeShimConfig(c)).ok());
  std::string script = absl::StrCat(
      "set -e; mount -t tmpfs src ", shared_src, "; mount --make-shared ", shared_src,
      "; mount -t tmpfs src ", slave_src, "; mount --make-shared ", slave_src, "; mkdir ",
      slave_src, "/sub; ", NODE_SHIM_PATH, " --bundle ", c.bundle,
      " 3>&1 >/dev/null 2>&1 & i=0; while [ ! -e ", shared_src,
      "/inner/f ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; cat ", shared_src,
      "/inner/f; grep -c \" ", shared_src, "/inner \" /proc/self/mountinfo; mount -t tmpfs h ",
      slave_src, "/sub; echo from-host > ", slave_src, "/sub/hostfile; wait; cat ", c.bundle,
      "/exit.json");
  int status = 0;
  std::string got = RunInPrivateMountNamespace(script, &status);
  EXPECT_EQ(status, 0) << got;
  EXPECT_THAT(got, HasSubstr("from-container\n1\n"));
  EXPECT_THAT(got, HasSubstr("\"exit_code\":0"));
  std::string out, err;
  ASSERT_TRUE(testutil::ReadContainerLog(c.bundle, out, err).ok());
  EXPECT_EQ(out, "from-host\n") << err;
  // Both sources are still plain directories here: everything stayed in the test's namespace.
  EXPECT_FALSE(linux::PathExists(shared_src + "/inner"));
}

TEST_F(ShimTest, SharedPropagationNeedsASharedSource) {
  std::string src = top_->path() + "/src";
  ASSERT_TRUE(linux::MakeDirs(src).ok());
  ShimConfig c = Sh("true");
  c.mounts = {{"bind", src, "/shared", {"rbind", "rshared"}}};
  ASSERT_TRUE(linux::MakeDirs(c.bundle).ok());
  ASSERT_TRUE(WriteText(c.bundle + "/" + kShimConfigFile, SerializeShimConfig(c)).ok());
  // A private mount of the test's namespace as the source.
  std::string script =
      absl::StrCat("mount -t tmpfs src ", src, "; mount --make-private ", src, "; ", NODE_SHIM_PATH,
                   " --bundle ", c.bundle, " 3>&1 >/dev/null 2>&1; true");
  int status = 0;
  std::string got = RunInPrivateMountNamespace(script, &status);
  EXPECT_THAT(got, AllOf(HasSubstr("error 9 "), HasSubstr("mount --make-shared " + src)));
}

TEST_F(ShimTest, SeccompProfileFromDockersFormat) {
  ShimConfig c = Sh("mkdir /x 2>&1; echo rc=$?; touch /y && echo touched");
  c.seccomp = R"({"defaultAction": "SCMP_ACT_ALLOW",
                  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                  "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"],
                                "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})";
  ShimResult r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.exit.status() << " " << r.shim.start_line;
  EXPECT_THAT(r.out,
              AllOf(HasSubstr("Operation not permitted"), HasSubstr("rc=1"), HasSubstr("touched")));
  // Only the profile applies: what the default filter blocks (unshare) is allowed by this
  // one, and the capability set still refuses it.
  c.seccomp = R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"],
                  "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]})";
  c.bundle += "-2";
  c.args = {"sh", "-c", "echo $$"};
  r = RunShimToEnd(c);
  ASSERT_TRUE(r.exit.ok()) << r.shim.start_line;
  EXPECT_EQ(r.out, "1\n");  // The getpid rule needs CAP_SYS_ADMIN, which the container lacks.
  c.seccomp = R"({"defaultAction": "SCMP_ACT_NOPE"})";
  c.bundle += "-3";
  r = RunShimToEnd(c);
  EXPECT_THAT(r.shim.start_line, AllOf(HasSubstr("error 3 "), HasSubstr("SCMP_ACT_NOPE")));
}

}  // namespace
}  // namespace nodeagent::runtime
