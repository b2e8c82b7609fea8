// End-to-end: seccomp profiles (--security-opt seccomp=FILE|unconfined), detach keys of
// `run -it` / `attach` on a real pty, and bad input that must fail cleanly, through nodectl
// against a node of the test's own.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// nodectl on a pseudo-terminal, as a user's shell runs it.
class PtyNodectl {
 public:
  PtyNodectl(const std::string& run_dir, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {NODECTL_PATH, "--run-dir", run_dir};
    argv.insert(argv.end(), args.begin(), args.end());
    struct winsize ws = {24, 80, 0, 0};
    pid_ = ::forkpty(&master_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      std::vector<char*> cargv;
      for (std::string& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  ~PtyNodectl() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  bool started() const { return pid_ > 0; }

  void Type(const std::string& keys) { (void)!::write(master_, keys.data(), keys.size()); }

  // Reads the terminal until `needle` shows up (true) or the deadline passes.
  bool WaitFor(const std::string& needle, absl::Duration timeout = absl::Seconds(20)) {
    absl::Time deadline = absl::Now() + timeout;
    while (seen_.find(needle) == std::string::npos) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      struct pollfd p = {master_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(master_, buf, sizeof(buf));
      if (n <= 0) return seen_.find(needle) != std::string::npos;
      seen_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  // nodectl's exit code, or -1 if it has not exited within `timeout`.
  int Wait(absl::Duration timeout = absl::Seconds(20)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      // Keep the terminal drained so that nodectl never blocks on output.
      WaitFor("\x01never", absl::Milliseconds(50));
    }
    return -1;
  }
  const std::string& seen() const { return seen_; }

 private:
  pid_t pid_ = -1;
  int master_ = -1;
  std::string seen_;
};

class SecurityE2E : public NodeFixture {
 protected:
  static std::string State(const std::string& container) {
    CommandResult inspect = Nodectl({"inspect", container});
    size_t at = inspect.out.find("\"state\": \"");
    if (at == std::string::npos) return "";
    return inspect.out.substr(at + 10, inspect.out.find('"', at + 10) - at - 10);
  }
};

TEST_F(SecurityE2E, SeccompProfileFileAndUnconfined) {
  std::string profile = base_ + "/deny-mkdir.json";
  std::ofstream(profile) << R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
  })";
  CommandResult denied = Nodectl(
      {"run", "--rm", "--security-opt", "seccomp=" + profile, "busybox", "mkdir", "/newdir"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("Operation not permitted")) << denied.err;
  CommandResult other = Nodectl({"run", "--rm", "--security-opt", "seccomp=" + profile, "busybox",
                                 "sh", "-c", "touch /f && echo touched"});
  EXPECT_EQ(other.out, "touched\n") << other.err;
  // The default filter refuses a new user namespace; unconfined does not (the capabilities
  // stay Docker's: it is still not privileged).
  CommandResult by_default =
      Nodectl({"run", "--rm", "busybox", "sh", "-c", "unshare -U true 2>/dev/null || echo no"});
  EXPECT_EQ(by_default.out, "no\n");
  CommandResult unconfined = Nodectl({"run", "--rm", "--security-opt", "seccomp=unconfined",
                                      "busybox", "sh", "-c", "unshare -U true && echo yes"});
  EXPECT_EQ(unconfined.out, "yes\n") << unconfined.err;
  // Bad profiles: a clear error at create, nothing left behind.
  CommandResult missing =
      Nodectl({"run", "--rm", "--security-opt", "seccomp=/no/such.json", "busybox", "true"});
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_THAT(missing.err, HasSubstr("/no/such.json"));
  std::string broken = base_ + "/broken.json";
  std::ofstream(broken) << R"({"defaultAction": "SCMP_ACT_SOMETIMES"})";
  CommandResult bad =
      Nodectl({"run", "--rm", "--security-opt", "seccomp=" + broken, "busybox", "true"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_THAT(bad.err, AllOf(HasSubstr("seccomp profile"), HasSubstr("SCMP_ACT_SOMETIMES")));
  EXPECT_EQ(RunCommand({"ls", "-A", RuntimeRoot() + "/containers"}).out, "");
}

TEST_F(SecurityE2E, DetachKeysLeaveTheContainerRunning) {
  {
    PtyNodectl run(RunDir(), {"run", "-it", "--name", "det", "busybox", "sh"});
    ASSERT_TRUE(run.started());
    ASSERT_TRUE(run.WaitFor("# ")) << run.seen();
    run.Type("echo mark-$((6*7))\r");
    ASSERT_TRUE(run.WaitFor("mark-42")) << run.seen();
    run.Type("\x10\x11");  // Ctrl-P Ctrl-Q.
    EXPECT_EQ(run.Wait(), 0) << run.seen();
  }
  EXPECT_EQ(State("det"), "CONTAINER_STATE_RUNNING");
  {
    // attach with other keys; the first key alone, not followed by the second, reaches the
    // shell after all ("xz" below).
    PtyNodectl attach(RunDir(), {"attach", "--detach-keys", "x,y", "det"});
    ASSERT_TRUE(attach.started());
    attach.Type("echo xz-$((2*3))\r");
    ASSERT_TRUE(attach.WaitFor("xz-6")) << attach.seen();
    attach.Type("xy");
    EXPECT_EQ(attach.Wait(), 0) << attach.seen();
  }
  EXPECT_EQ(State("det"), "CONTAINER_STATE_RUNNING");
  {
    // The shell is still the same one: ending it ends the container.
    PtyNodectl attach(RunDir(), {"attach", "det"});
    attach.Type("exit 5\r");
    EXPECT_EQ(attach.Wait(), 5) << attach.seen();
  }
  EXPECT_EQ(Nodectl({"wait", "det"}).out, "5\n");
  EXPECT_EQ(Nodectl({"rm", "det"}).exit_code, 0);
  CommandResult bad_keys =
      Nodectl({"run", "--rm", "-it", "--detach-keys", "ctrl-", "busybox", "true"});
  EXPECT_EQ(bad_keys.exit_code, 125);
  EXPECT_THAT(bad_keys.err, HasSubstr("--detach-keys"));
}

TEST_F(SecurityE2E, MountDestinationThroughASymlinkToRootIsRefused) {
  // The first mount brings a symlink to "/"; the second is aimed through it.
  std::string dir = MakeTempDir(base_, "links");
  ASSERT_EQ(symlink("/", (dir + "/root").c_str()), 0);
  CommandResult run =
      Nodectl({"run", "--rm", "-v", dir + ":/data:ro", "--tmpfs", "/data/root", "busybox", "true"});
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_THAT(run.err, HasSubstr("\"/data/root\" resolves to the container's root"));
  EXPECT_EQ(Nodectl({"ps", "-a", "-q"}).out, "");
  EXPECT_EQ(RunCommand({"ls", "-A", RuntimeRoot() + "/containers"}).out, "");
  EXPECT_EQ(RunCommand({"ls", "-A", ImageRoot() + "/snapshots"}).out, "");
}

TEST_F(SecurityE2E, NameClashLeavesOnlyTheFirst) {
  ASSERT_EQ(Nodectl({"create", "--name", "clash", "busybox", "true"}).exit_code, 0);
  CommandResult again = Nodectl({"run", "--name", "clash", "busybox", "true"});
  EXPECT_EQ(again.exit_code, 125);
  EXPECT_THAT(again.err, HasSubstr("\"clash\" is already used"));
  EXPECT_EQ(RunCommand({"sh", "-c", "ls -A " + RuntimeRoot() + "/containers | wc -l"}).out, "1\n");
  EXPECT_EQ(RunCommand({"sh", "-c", "ls -A " + ImageRoot() + "/snapshots | wc -l"}).out, "1\n");
  EXPECT_EQ(Nodectl({"rm", "clash"}).exit_code, 0);
  // Absurd limits: clear errors before anything is made.
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{{"--pids-limit", "-1"},
                                             {"-m", "1k"},
                                             {"-m", "999999999t"},
                                             {"--cpu-percent", "-50"},
                                             {"--cpus", "nan"}}) {
    std::vector<std::string> args = {"run", "--rm"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"busybox", "true"});
    CommandResult bad = Nodectl(args);
    EXPECT_EQ(bad.exit_code, 125) << flags[0] << " " << flags[1];
    EXPECT_THAT(bad.err, HasSubstr(flags[1])) << bad.err;
  }
  EXPECT_EQ(RunCommand({"ls", "-A", RuntimeRoot() + "/containers"}).out, "");
}

}  // namespace
}  // namespace nodeagent::testing
