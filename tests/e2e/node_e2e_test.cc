// End-to-end: a real node (the four services started by `nodectl up` on their own --root and
// --run-dir) driven through nodectl, exactly as a user would, plus a third-party gRPC client
// (buf curl) for health and reflection. Runs as root against the real kernel.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"
#include "tests/support/subprocess.h"

namespace nodeagent::testing {
namespace {

class NodeE2E : public NodeFixture {};

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(NodeE2E, StatusShowsAllServicesServing) {
  CommandResult status = Nodectl({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  for (const char* service : {"image", "runtime", "network", "metrics"}) {
    EXPECT_THAT(status.out, HasSubstr(service));
  }
  EXPECT_THAT(status.out, Not(HasSubstr("unreachable")));
  // Sockets are 0660.
  for (const char* service : {"image", "runtime", "network", "metrics"}) {
    struct stat st;
    ASSERT_EQ(stat(absl::StrCat(RunDir(), "/", service, ".sock").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u) << service;
  }
}

TEST_F(NodeE2E, RunEchoHello) {
  CommandResult run = Nodectl({"run", "--rm", "busybox", "echo", "hello"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "hello\n");
}

TEST_F(NodeE2E, StdoutAndStderrStayApart) {
  CommandResult run = Sh("echo to-out; echo to-err >&2");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "to-out\n");
  EXPECT_EQ(run.err, "to-err\n");
}

TEST_F(NodeE2E, PidOneAndPsSeesOnlyTheContainer) {
  CommandResult run = Sh("echo pid=$$; ps -o pid,comm; true");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("pid=1\n"));
  // Header + sh (pid 1) + ps itself, nothing from the host.
  std::vector<std::string> lines = absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << run.out;
  EXPECT_THAT(lines[2], AllOf(HasSubstr("1"), HasSubstr("sh")));
  EXPECT_THAT(lines[3], HasSubstr("ps"));
}

TEST_F(NodeE2E, HostnameIsTheContainers) {
  CommandResult named = Nodectl({"run", "--rm", "--hostname", "web1", "busybox", "hostname"});
  EXPECT_EQ(named.out, "web1\n") << named.err;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  CommandResult dflt = Nodectl({"run", "--rm", "busybox", "hostname"});
  EXPECT_EQ(dflt.exit_code, 0);
  EXPECT_NE(absl::StripTrailingAsciiWhitespace(dflt.out), std::string(host));
  EXPECT_EQ(absl::StripTrailingAsciiWhitespace(dflt.out).size(), 12u) << dflt.out;
}

TEST_F(NodeE2E, HostMarkerFileIsUnreachable) {
  std::string marker = absl::StrCat(base_, "/marker-", getpid());
  std::ofstream(marker) << "host secret\n";
  ASSERT_TRUE(Exists(marker));
  std::string script = absl::StrCat(
      "for p in ", marker, " /proc/1/root", marker, " /proc/self/root", marker, " ../../../../..",
      marker, "; do test -e $p && echo FOUND $p; done;", " cd /; cd ../../..; test -e .", marker,
      " && echo FOUND dotdot;", " grep -l 'host secret' -r /var /tmp /root 2>/dev/null; echo done");
  CommandResult run = Sh(script);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "done\n");
}

TEST_F(NodeE2E, WritesLandInTheUpperAndTheImageIsUnchanged) {
  CommandResult run = Nodectl({"run", "--name", "writer", "busybox", "sh", "-c",
                               "echo data > /newfile && rm /bin/ls && echo ok"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(run.out, "ok\n");
  CommandResult inspect = Nodectl({"inspect", "writer"});
  ASSERT_EQ(inspect.exit_code, 0);
  size_t at = inspect.out.find("\"id\": \"");
  ASSERT_NE(at, std::string::npos) << inspect.out;
  std::string id = inspect.out.substr(at + 7, 64);
  std::string upper = absl::StrCat(ImageRoot(), "/snapshots/", id, "/upper");
  EXPECT_EQ(ReadText(upper + "/newfile"), "data\n");
  // Deletion is an overlay whiteout (a 0:0 character device) in the upper.
  struct stat st;
  ASSERT_EQ(lstat((upper + "/bin/ls").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  // The image's layers are untouched: no new file, nothing deleted.
  EXPECT_EQ(RunCommand({"find", ImageRoot() + "/layers", "-name", "newfile"}).out, "");
  EXPECT_THAT(RunCommand({"find", ImageRoot() + "/layers", "-path", "*/bin/ls"}).out,
              HasSubstr("/bin/ls"));
  // A new container of the same image sees neither change.
  CommandResult fresh = Sh("test -e /newfile && echo LEAKED; test -e /bin/ls && echo has-ls");
  EXPECT_EQ(fresh.out, "has-ls\n") << fresh.err;
  CommandResult rm = Nodectl({"rm", "writer"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_FALSE(Exists(upper));
  EXPECT_FALSE(Exists(absl::StrCat(RuntimeRoot(), "/containers/", id)));
}

TEST_F(NodeE2E, HostMountTableGainsNothing) {
  std::set<std::string> before = HostMounts();
  CommandResult started = Nodectl({"run", "-d", "--name", "sleeper", "busybox", "sleep", "60"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string id(absl::StripTrailingAsciiWhitespace(started.out));
  // The container's own mount table has its rootfs, /proc, /dev and /sys...
  CommandResult inside = Sh("cat /proc/self/mountinfo");
  EXPECT_THAT(inside.out, HasSubstr(" / / "));
  EXPECT_THAT(inside.out, HasSubstr(" /proc "));
  // ...and the host's has nothing new while it runs but the network service's pin of the
  // container's netns (as Docker's /run/docker/netns), gone with the container.
  std::set<std::string> during = HostMounts();
  for (const std::string& m : during) {
    if (!absl::StartsWith(m, RunDir() + "/netns")) {
      EXPECT_TRUE(before.count(m)) << "new host mount " << m;
    }
  }
  CommandResult rm = Nodectl({"rm", "-f", id});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  // The netns directory stays a (private) mount point while the network service runs, as
  // `ip netns` keeps /run/netns (the network tests check what is pinned below it).
  std::set<std::string> after;
  for (const std::string& m : HostMounts()) {
    if (!absl::StartsWith(m, RunDir() + "/netns")) after.insert(m);
  }
  EXPECT_EQ(after, before);
}

TEST_F(NodeE2E, ExitCodesPropagate) {
  EXPECT_EQ(Sh("exit 7").exit_code, 7);
  EXPECT_EQ(Sh("exit 0").exit_code, 0);
  EXPECT_EQ(Nodectl({"run", "--rm", "busybox", "false"}).exit_code, 1);
}

TEST_F(NodeE2E, SignalDeathIs128PlusN) {
  CommandResult started = Nodectl({"run", "-d", "busybox", "sleep", "60"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string id(absl::StripTrailingAsciiWhitespace(started.out));
  EXPECT_EQ(Nodectl({"kill", "-s", "KILL", id}).exit_code, 0);
  CommandResult wait = Nodectl({"wait", id});
  EXPECT_EQ(wait.out, "137\n") << wait.err;
  EXPECT_EQ(Nodectl({"rm", id}).exit_code, 0);
}

TEST_F(NodeE2E, SignalForwardedFromForegroundRun) {
  // A process that is not PID 1's default-ignoring init: the shell traps TERM.
  CommandResult started = Nodectl(
      {"run", "-d", "busybox", "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 1; done"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string id(absl::StripTrailingAsciiWhitespace(started.out));
  EXPECT_EQ(Nodectl({"kill", "-s", "TERM", id}).exit_code, 0);
  EXPECT_EQ(Nodectl({"wait", id}).out, "42\n");
  EXPECT_EQ(Nodectl({"rm", id}).exit_code, 0);
}

TEST_F(NodeE2E, EnvAndWorkdir) {
  CommandResult run = Nodectl({"run", "--rm", "-e", "FOO=bar", "-e", "EMPTY=", "-w", "/tmp",
                               "busybox", "sh", "-c", "echo $FOO; pwd; echo $PATH"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("bar\n/tmp\n/usr/local/sbin"));
  // A working directory that does not exist is created, as Docker does.
  CommandResult made = Nodectl({"run", "--rm", "-w", "/new/dir", "busybox", "pwd"});
  EXPECT_EQ(made.out, "/new/dir\n") << made.err;
}

TEST_F(NodeE2E, MinimalDevReadOnlySysAndLoopbackOnlyWithoutANetwork) {
  CommandResult dev = Sh("ls /dev");
  for (const char* node : {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"}) {
    EXPECT_THAT(dev.out, HasSubstr(absl::StrCat(node, "\n"))) << dev.out;
  }
  EXPECT_EQ(Sh("echo x > /dev/null && head -c 4 /dev/zero | wc -c").out, "4\n");
  CommandResult sys = Sh("touch /sys/x 2>/dev/null && echo writable || echo ro");
  EXPECT_EQ(sys.out, "ro\n");
  CommandResult net =
      Sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", {"--network", "none"});
  EXPECT_EQ(net.out, "lo\n");
  CommandResult lo = Sh("ip link show lo | grep -c UP", {"--network", "none"});
  EXPECT_EQ(lo.out, "1\n") << lo.err;
}

TEST_F(NodeE2E, BadImageIsAClearErrorAndLeavesNothing) {
  CommandResult run = Nodectl({"run", "--rm", "no-such-image", "true"});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_THAT(run.err, AllOf(HasSubstr("no-such-image"), HasSubstr("not found")));
  EXPECT_EQ(Nodectl({"ps", "-a", "-q"}).out, "");
  EXPECT_EQ(RunCommand({"ls", "-A", RuntimeRoot() + "/containers"}).out, "");
  EXPECT_EQ(RunCommand({"ls", "-A", ImageRoot() + "/snapshots"}).out, "");
  for (const std::string& dir : CgroupDirsOf(cgroup_parent_)) {
    // A warm node-shim's slot (warm-*) is the node's, not a container's.
    CommandResult children =
        RunCommand({"find", dir, "-mindepth", "1", "-type", "d", "!", "-name", "warm-*"});
    EXPECT_EQ(children.out, "") << dir;
  }
}

TEST_F(NodeE2E, MissingCommandIs127AndLeavesNothing) {
  CommandResult run = Nodectl({"run", "--rm", "busybox", "no-such-command"});
  EXPECT_EQ(run.exit_code, 127);
  EXPECT_THAT(run.err, HasSubstr("no-such-command"));
  EXPECT_THAT(run.err, HasSubstr("not found"));
  EXPECT_EQ(Nodectl({"ps", "-a", "-q"}).out, "");
  CommandResult containers = RunCommand({"ls", "-A", RuntimeRoot() + "/containers"});
  EXPECT_EQ(containers.out, "");
  CommandResult snapshots = RunCommand({"ls", "-A", ImageRoot() + "/snapshots"});
  EXPECT_EQ(snapshots.out, "");
  for (const std::string& dir : CgroupDirsOf(cgroup_parent_)) {
    // A warm node-shim's slot (warm-*) is the node's, not a container's.
    CommandResult children =
        RunCommand({"find", dir, "-mindepth", "1", "-type", "d", "!", "-name", "warm-*"});
    EXPECT_EQ(children.out, "") << dir;
  }
}

TEST_F(NodeE2E, UnknownFlagIsAUsageError) {
  CommandResult run = Nodectl({"run", "--no-such-flag", "busybox", "true"});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_THAT(run.err, HasSubstr("no-such-flag"));
}

TEST_F(NodeE2E, ImportRootfsTarballAndRunIt) {
  // A plain rootfs tarball like the seed exercise's rootfs.tar, made from busybox-static.
  std::string dir = MakeTempDir(base_, "rootfs");
  ASSERT_EQ(RunCommand({"mkdir", "-p", dir + "/bin", dir + "/proc", dir + "/dev", dir + "/sys",
                        dir + "/tmp", dir + "/etc"})
                .exit_code,
            0);
  ASSERT_EQ(RunCommand({"cp", "/bin/busybox", dir + "/bin/busybox"}).exit_code, 0);
  ASSERT_EQ(symlink("busybox", (dir + "/bin/sh").c_str()), 0);
  ASSERT_EQ(symlink("busybox", (dir + "/bin/cat").c_str()), 0);
  std::ofstream(dir + "/etc/motd") << "imported rootfs\n";
  std::string tar = base_ + "/rootfs.tar";
  ASSERT_EQ(RunCommand({"tar", "-C", dir, "-cf", tar, "."}).exit_code, 0);

  CommandResult import = Nodectl({"import", tar, "seedroot:v1"});
  ASSERT_EQ(import.exit_code, 0) << import.err;
  EXPECT_THAT(import.out, HasSubstr("sha256:"));
  CommandResult images = Nodectl({"images"});
  EXPECT_THAT(images.out, AllOf(HasSubstr("busybox:latest"), HasSubstr("seedroot:v1")));
  CommandResult run = Nodectl({"run", "--rm", "seedroot:v1", "/bin/cat", "/etc/motd"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "imported rootfs\n");
  CommandResult bad = Nodectl({"import", "/nonexistent.tar", "x"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("/nonexistent.tar"));
}

TEST_F(NodeE2E, LogsKeepOutputAfterExit) {
  CommandResult run = Nodectl(
      {"run", "--name", "talker", "busybox", "sh", "-c", "echo one; echo two >&2; echo three"});
  ASSERT_EQ(run.exit_code, 0);
  CommandResult logs = Nodectl({"logs", "talker"});
  EXPECT_EQ(logs.out, "one\nthree\n");
  EXPECT_EQ(logs.err, "two\n");
  // --tail counts lines (stdout and stderr interleave in pipe-read order, so only stdout here).
  ASSERT_EQ(Nodectl({"run", "--name", "counter", "busybox", "sh", "-c", "seq 1 5"}).exit_code, 0);
  CommandResult tail = Nodectl({"logs", "--tail", "2", "counter"});
  EXPECT_EQ(tail.out, "4\n5\n");
  EXPECT_EQ(Nodectl({"rm", "counter"}).exit_code, 0);
  CommandResult ps = Nodectl({"ps", "-a"});
  EXPECT_THAT(ps.out, AllOf(HasSubstr("talker"), HasSubstr("Exited (0)")));
  EXPECT_EQ(Nodectl({"rm", "talker"}).exit_code, 0);
}

TEST_F(NodeE2E, NameClashIsRefused) {
  ASSERT_EQ(Nodectl({"create", "--name", "dup", "busybox", "true"}).exit_code, 0);
  CommandResult again = Nodectl({"create", "--name", "dup", "busybox", "true"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("already used"));
  EXPECT_EQ(Nodectl({"rm", "dup"}).exit_code, 0);
}

TEST_F(NodeE2E, HealthAndReflectionWithBufCurl) {
  for (const char* service : {"image", "runtime", "network", "metrics"}) {
    std::string socket = absl::StrCat(RunDir(), "/", service, ".sock");
    CommandResult health =
        RunCommand({"buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--unix-socket",
                    socket, "http://localhost/grpc.health.v1.Health/Check"});
    EXPECT_EQ(health.exit_code, 0) << service << ": " << health.err;
    EXPECT_THAT(health.out, HasSubstr("SERVING")) << service;
    CommandResult list =
        RunCommand({"buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--unix-socket",
                    socket, "--list-methods", "http://localhost"});
    EXPECT_EQ(list.exit_code, 0) << service << ": " << list.err;
    EXPECT_THAT(list.out, HasSubstr("nodeagent.v1.")) << service;
  }
  // A real call through reflection: the image service lists the built-in busybox image.
  CommandResult images = RunCommand({"buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                                     "--unix-socket", RunDir() + "/image.sock",
                                     "http://localhost/nodeagent.v1.ImageService/ListImages"});
  EXPECT_EQ(images.exit_code, 0) << images.err;
  EXPECT_THAT(images.out, HasSubstr("busybox:latest"));
  // And an error travels with its code and message (issue 4 implemented PullImage: a
  // reference without a registry host is an invalid argument that says why).
  CommandResult pull =
      RunCommand({"buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--unix-socket",
                  RunDir() + "/image.sock", "-d", "{\"ref\":\"x\"}",
                  "http://localhost/nodeagent.v1.ImageService/PullImage"});
  EXPECT_NE(pull.exit_code, 0);
  EXPECT_THAT(pull.err + pull.out, HasSubstr("invalid_argument"));
  EXPECT_THAT(pull.err + pull.out, HasSubstr("name the registry"));
}

}  // namespace
}  // namespace nodeagent::testing
