#include "services/runtime/linux/exec_shim.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/attach_socket.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/container_init.h"
#include "services/runtime/linux/exec_lookup.h"
#include "services/runtime/linux/io_monitor.h"
#include "services/runtime/linux/security.h"
#include "services/runtime/linux/shim_protocol.h"
#include "services/runtime/linux/spawn.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

absl::StatusOr<int> ReadPid(const std::string& path) {
  NA_ASSIGN_OR_RETURN(std::string text, linux::ReadFile(path));
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid) || pid <= 0) {
    return absl::InternalError(absl::StrCat("\"", path, "\": not a pid"));
  }
  return pid;
}

// The container's first process, pinned by a pidfd, once it is sure to be that process: the
// shim of the bundle is alive, has not recorded an exit, and is its parent.
absl::StatusOr<UniqueFd> OpenRunningContainer(const std::string& bundle, const std::string& id) {
  absl::Status not_running =
      absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
  if (linux::PathExists(absl::StrCat(bundle, "/", kExitFile))) return not_running;
  auto shim_pid = ReadPid(absl::StrCat(bundle, "/", kShimPidFile));
  auto init_pid = ReadPid(absl::StrCat(bundle, "/", kInitPidFile));
  if (!shim_pid.ok() || !init_pid.ok()) return not_running;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, *init_pid, 0));
  if (fd < 0) return not_running;
  UniqueFd pidfd(fd);
  auto status = linux::ReadFile(absl::StrCat("/proc/", *init_pid, "/status"));
  if (!status.ok()) return not_running;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    if (absl::ConsumePrefix(&line, "PPid:")) {
      int ppid = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &ppid) && ppid == *shim_pid) {
        // Checked after the pidfd was opened: the pid cannot have been reused since.
        if (::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0) == 0) return pidfd;
      }
      break;
    }
  }
  return not_running;
}

bool SameNamespace(int pid, const char* type) {
  struct stat own, theirs;
  return ::stat(absl::StrCat("/proc/self/ns/", type).c_str(), &own) == 0 &&
         ::stat(absl::StrCat("/proc/", pid, "/ns/", type).c_str(), &theirs) == 0 &&
         own.st_ino == theirs.st_ino && own.st_dev == theirs.st_dev;
}

struct ExecArgs {
  int container_pidfd = -1;
  int namespaces = 0;  // CLONE_NEW* to setns into through the pidfd.
  std::vector<std::string> cgroups_to_join;
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  int error_fd = -1;
  ProcessSetup setup;
};

absl::Status ExecChild(const ExecArgs& a) {
  if (a.stdin_fd >= 0) {
    if (::dup2(a.stdin_fd, 0) < 0 || ::dup2(a.stdout_fd, 1) < 0 || ::dup2(a.stderr_fd, 2) < 0) {
      return LastErrnoStatus("dup2 stdio");
    }
  }
  NA_RETURN_IF_ERROR(ResetProcessState());
  // Host paths: before the mount namespace changes.
  for (const std::string& dir : a.cgroups_to_join) {
    NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cgroup.procs", "0"));
  }
  // Every namespace at once (the kernel orders them, user first); the mount namespace's root
  // becomes our root and cwd: from here on only the container's files are reachable.
  if (::setns(a.container_pidfd, a.namespaces) != 0) {
    return LastErrnoStatus("setns into the container's namespaces");
  }
  return FinishAndExec(a.setup);
}

struct Exec {
  ShimConfig config;
  ShimExecProcess process;
  UniqueFd container;
  SpawnedContainer spawned;
  UniqueFd attach;
  UniqueFd signals;
};

absl::StatusOr<Exec> StartExec(const std::string& bundle, const std::string& dir,
                               const sigset_t& forwarded) {
  if (::getsid(0) != ::getpid() && ::setsid() < 0) {
    LogWarning("%s", LastErrnoStatus("setsid").ToString());
  }
  Exec e;
  NA_ASSIGN_OR_RETURN(std::string config_text,
                      linux::ReadFile(absl::StrCat(bundle, "/", kShimConfigFile)));
  NA_ASSIGN_OR_RETURN(e.config, ParseShimConfig(config_text));
  SetLogPrefix(absl::StrCat("node-shim exec ", e.config.id));
  NA_ASSIGN_OR_RETURN(std::string process_text,
                      linux::ReadFile(absl::StrCat(dir, "/", kExecProcessFile)));
  NA_ASSIGN_OR_RETURN(e.process, ParseExecProcess(process_text));
  NA_ASSIGN_OR_RETURN(e.container, OpenRunningContainer(bundle, e.config.id));
  NA_RETURN_IF_ERROR(
      linux::WriteFileAtomic(absl::StrCat(dir, "/", kShimPidFile), absl::StrCat(::getpid(), "\n")));
  int sfd = ::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return LastErrnoStatus("signalfd");
  e.signals.Reset(sfd);
  NA_ASSIGN_OR_RETURN(e.attach, ListenAttachSocket(dir));

  ExecArgs a;
  a.container_pidfd = e.container.get();
  int container_pid = 0;
  {
    auto pid = ReadPid(absl::StrCat(bundle, "/", kInitPidFile));
    if (!pid.ok()) return pid.status();
    container_pid = *pid;
  }
  a.namespaces =
      CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWPID;
  if (!SameNamespace(container_pid, "user")) a.namespaces |= CLONE_NEWUSER;
  a.cgroups_to_join = e.config.cgroup_dirs;

  ProcessSetup& setup = a.setup;
  setup.args = e.process.args;
  setup.env = e.process.env.empty() ? e.config.env : e.process.env;
  setup.cwd = e.process.cwd.empty() ? e.config.cwd : e.process.cwd;
  setup.user = e.process.user.empty() ? e.config.user : e.process.user;
  setup.tty = e.process.tty;
  setup.tty_rows = e.process.tty_rows;
  setup.tty_cols = e.process.tty_cols;
  ShimConfig security = e.config;
  security.init = false;
  if (e.process.privileged) {
    security.privileged = true;
    security.seccomp = "unconfined";
    security.cap_add = {"ALL"};
    security.cap_drop.clear();
  }
  NA_ASSIGN_OR_RETURN(ProcessSetup hardening, FirstProcessSetup(security));
  setup.capabilities = hardening.capabilities;
  setup.seccomp = hardening.seccomp;
  setup.seccomp_profile = hardening.seccomp_profile;
  setup.no_new_privs = hardening.no_new_privs;

  // The child is born in the container's pid namespace: this process's pid_for_children.
  if (::setns(e.container.get(), CLONE_NEWPID) != 0) {
    return LastErrnoStatus("setns into the container's pid namespace");
  }
  NA_ASSIGN_OR_RETURN(e.spawned,
                      SpawnWithIo(e.process.tty, e.process.stdin_open, [&](const ChildFds& fds) {
                        ExecArgs child = a;
                        child.stdin_fd = fds.stdin_fd;
                        child.stdout_fd = fds.stdout_fd;
                        child.stderr_fd = fds.stderr_fd;
                        child.error_fd = fds.error_fd;
                        child.setup.console_fd = fds.console_fd;
                        return ExecChild(child);
                      }));
  return e;
}

}  // namespace

int RunExecShim(const std::string& bundle, const std::string& exec_id, int start_fd) {
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int sig : kForwardedSignals) sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  SetLogPrefix("node-shim exec");
  if (::fcntl(start_fd, F_SETFD, FD_CLOEXEC) != 0) {
    LogError("fd %d (the start pipe): %s", start_fd, LastErrnoStatus("fcntl").ToString());
    return 2;
  }
  UniqueFd start(start_fd);
  auto report = [&](const std::string& line) {
    (void)linux::WriteAll(start.get(), line);
    start.Reset();
  };
  if (bundle.empty() || bundle[0] != '/' || exec_id.empty() ||
      exec_id.find('/') != std::string::npos || exec_id == "." || exec_id == "..") {
    report(absl::StrCat("error ", static_cast<int>(absl::StatusCode::kInvalidArgument),
                        " bad --bundle \"", bundle, "\" or --exec-id \"", exec_id, "\"\n"));
    return 1;
  }
  const std::string dir = absl::StrCat(bundle, "/", kExecDirPrefix, exec_id);
  absl::StatusOr<Exec> e = StartExec(bundle, dir, forwarded);
  if (!e.ok()) {
    LogError("exec failed: %s", e.status().ToString());
    report(absl::StrCat("error ", static_cast<int>(e.status().code()), " ",
                        absl::StrReplaceAll(e.status().message(), {{"\n", " "}}), "\n"));
    return 1;
  }
  report(absl::StrCat("ok ", e->spawned.pid, "\n"));
  MonitoredIo io;
  io.pidfd = e->spawned.pidfd.get();
  io.stdout_read = std::move(e->spawned.stdout_read);
  io.stderr_read = std::move(e->spawned.stderr_read);
  io.tty_master = std::move(e->spawned.tty_master);
  io.stdin_write = std::move(e->spawned.stdin_write);
  io.listen_fd = e->attach.get();
  io.signal_fd = e->signals.get();
  IoMonitor monitor(std::move(io));
  ExitRecord record = monitor.Run();
  absl::Status written =
      linux::WriteFileAtomic(absl::StrCat(dir, "/", kExitFile), SerializeExitRecord(record));
  // The runtime connects right after the start report; a quick process may be gone by then.
  monitor.AwaitFirstAttacher(5000);
  ::unlink(absl::StrCat(dir, "/", kAttachSocketFile).c_str());
  monitor.SendExit(record);
  if (!written.ok()) {
    LogError("exit code %d not recorded: %s", record.exit_code, written.ToString());
    return 1;
  }
  return 0;
}

}  // namespace nodeagent::runtime
