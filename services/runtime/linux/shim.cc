#include "services/runtime/linux/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/runtime/core/log_format.h"
#include "services/runtime/linux/attach_socket.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/cgroup_parse.h"
#include "services/runtime/linux/io_monitor.h"
#include "services/runtime/linux/shim_protocol.h"
#include "services/runtime/linux/spawn.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

// Signals node-shim passes on to the container's first process rather than act on.
constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

std::string BundleFile(const std::string& bundle, const char* name) {
  return absl::StrCat(bundle, "/", name);
}

// Write to a temporary file and rename: readers see all of the pid or none of it. No fsync:
// after a host crash the pid means nothing anyway.
absl::Status WritePidFile(const std::string& path, pid_t pid) {
  std::string tmp = absl::StrCat(path, ".tmp");
  NA_ASSIGN_OR_RETURN(UniqueFd fd, linux::OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644));
  absl::Status written = linux::WriteAll(fd.get(), absl::StrCat(pid, "\n"));
  if (!written.ok()) return Annotate(written, absl::StrCat("write \"", tmp, "\""));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return LastErrnoStatus(absl::StrCat("rename \"", tmp, "\" -> \"", path, "\""));
  }
  return absl::OkStatus();
}

// The start pipe: one line, then closed (shim_protocol.h).
class StartPipe {
 public:
  explicit StartPipe(int fd) : fd_(fd) {}

  // node-shim warm: a line before the report, the pipe stays open.
  void ReportReady() {
    if (absl::Status s = linux::WriteAll(fd_.get(), "ready\n"); !s.ok()) {
      LogWarning("start pipe: %s", s.ToString());
    }
  }
  void ReportOk(pid_t pid) { Send(absl::StrCat("ok ", pid, "\n")); }
  void ReportError(const absl::Status& status) {
    LogError("start failed: %s", status.ToString());
    Send(absl::StrCat("error ", static_cast<int>(status.code()), " ",
                      absl::StrReplaceAll(status.message(), {{"\n", " "}}), "\n"));
  }

 private:
  void Send(const std::string& line) {
    // If the runtime is gone (EPIPE; SIGPIPE is ignored) the container still runs and the
    // runtime finds it through init.pid when it comes back.
    if (absl::Status s = linux::WriteAll(fd_.get(), line); !s.ok()) {
      LogWarning("start pipe: %s", s.ToString());
    }
    fd_.Reset();
  }

  UniqueFd fd_;
};

// Everything up to the start of the container, with what it needs afterwards.
struct Started {
  ShimConfig config;
  SpawnedContainer container;
  UniqueFd log;
  UniqueFd signals;
  UniqueFd attach;
};

// Leave the runtime's session so that its terminal's or group's signals do not reach us.
// The runtime may have made us a session leader already (POSIX_SPAWN_SETSID); started by
// hand from a job-control shell we lead a process group and cannot: that is only a warning.
void LeaveRuntimeSession() {
  if (::getsid(0) != ::getpid() && ::setsid() < 0) {
    LogWarning("%s", LastErrnoStatus("setsid").ToString());
  }
}

// `warm`: the child cloned ahead (node-shim warm) takes the container instead of a new clone.
absl::StatusOr<Started> Start(const std::string& bundle, const sigset_t& forwarded,
                              WarmChild* warm) {
  LeaveRuntimeSession();
  NA_RETURN_IF_ERROR(WritePidFile(BundleFile(bundle, kShimPidFile), ::getpid()));

  Started s;
  NA_ASSIGN_OR_RETURN(s.config, LoadShimConfig(bundle));
  if (warm != nullptr) {
    if (absl::Status ok = WarmStartable(s.config); !ok.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a warm node-shim cannot start this container: ", ok.message()));
    }
  }
  SetLogPrefix(absl::StrCat("node-shim ", s.config.id));
  std::string rootfs = BundleFile(bundle, kRootfsDir);
  if (::mkdir(rootfs.c_str(), 0755) != 0 && errno != EEXIST) {
    return LastErrnoStatus(absl::StrCat("mkdir \"", rootfs, "\""));
  }
  NA_ASSIGN_OR_RETURN(s.log, linux::OpenFile(BundleFile(bundle, kContainerLogFile),
                                             O_WRONLY | O_CREAT | O_APPEND, 0640));
  int fd = ::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return LastErrnoStatus("signalfd");
  s.signals.Reset(fd);

  // Listening before the start: the runtime may attach as soon as it reads "ok".
  NA_ASSIGN_OR_RETURN(s.attach, ListenAttachSocket(bundle));
  if (warm != nullptr) {
    NA_ASSIGN_OR_RETURN(s.container, ResumeWarmChild(std::move(*warm), s.config));
  } else {
    NA_ASSIGN_OR_RETURN(s.container, SpawnContainer(s.config));
  }
  if (absl::Status written = WritePidFile(BundleFile(bundle, kInitPidFile), s.container.pid);
      !written.ok()) {
    // An error report promises that nothing is left running.
    KillAndReapChild(s.container.pidfd.get());
    return written;
  }
  return s;
}

bool ReadOomKilled(const std::vector<std::string>& cgroup_dirs) {
  for (const std::string& dir : cgroup_dirs) {
    // v2 counts in memory.events, v1 in memory.oom_control; both "oom_kill N". Only one of
    // the dirs is the memory controller's: the first file found answers.
    for (const char* file : {"memory.events", "memory.oom_control"}) {
      auto text = ReadCgroupFile(dir, file);
      if (!text.ok()) continue;
      auto counters = ParseFlatKeyed(*text);
      if (!counters.ok()) return false;
      auto it = counters->find("oom_kill");
      return it != counters->end() && it->second > 0;
    }
  }
  return false;
}

// fds 0-2 closed when we start would be reused by the pipes below and then clobbered by the
// child's dup2 onto 0-2.
void EnsureStdFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int null_fd = ::open("/dev/null", O_RDWR);  // Lowest free fd: exactly `fd`.
      if (null_fd != fd && null_fd >= 0) ::close(null_fd);
    }
  }
}

// What every node-shim does first. Blocks the forwarded signals: until the container runs they
// wait in the signalfd instead of killing us (the child unblocks them before exec).
sigset_t PrepareShimProcess() {
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int sig : kForwardedSignals) sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  // A runtime that went away must not kill us through a write to its pipe. (The child
  // resets every signal to its default before exec.)
  ::signal(SIGPIPE, SIG_IGN);
  EnsureStdFds();
  SetLogPrefix("node-shim");
  return forwarded;
}

bool SetCloseOnExec(int fd, const char* what) {
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) return true;
  LogError("fd %d (%s): %s", fd, what, LastErrnoStatus("fcntl").ToString());
  return false;
}

int RunStarted(const std::string& bundle, StartPipe& start_pipe, absl::StatusOr<Started> started);

// node-shim warm, until the go: the child's 'r', the go line, or the end of either.
enum class WarmEvent { kGo, kEnd };

WarmEvent AwaitGo(WarmChild& child, int control_fd, StartPipe& start_pipe, std::string* line) {
  bool ready = false;
  while (true) {
    struct pollfd fds[3] = {{child.sock.get(), static_cast<short>(ready ? 0 : POLLIN), 0},
                            {child.pidfd.get(), POLLIN, 0},
                            {control_fd, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      LogError("%s", LastErrnoStatus("poll").ToString());
      return WarmEvent::kEnd;
    }
    if (fds[1].revents != 0) {
      LogWarning("warm child %d ended before its container", child.pid);
      return WarmEvent::kEnd;
    }
    if (fds[0].revents != 0) {
      char byte = 0;
      if (::read(child.sock.get(), &byte, 1) != 1 || byte != 'r') return WarmEvent::kEnd;
      ready = true;
      start_pipe.ReportReady();
    }
    if (fds[2].revents != 0) {
      char buf[512];
      ssize_t n = ::read(control_fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return WarmEvent::kEnd;  // Retired, or the runtime is gone.
      line->append(buf, static_cast<size_t>(n));
      if (line->find('\n') != std::string::npos || line->size() > 8192) return WarmEvent::kGo;
    }
  }
}

}  // namespace

int RunWarmShim(const std::vector<std::string>& cgroup_dirs, int start_fd, int control_fd) {
  sigset_t forwarded = PrepareShimProcess();
  if (!SetCloseOnExec(start_fd, "the start pipe") ||
      !SetCloseOnExec(control_fd, "the control pipe")) {
    return 2;
  }
  StartPipe start_pipe(start_fd);
  linux::UniqueFd control(control_fd);
  LeaveRuntimeSession();
  // Whatever happens before the go, nothing of the slot stays: the child, then its cgroups.
  auto end_slot = [&](WarmChild* child) {
    if (child != nullptr) KillAndReapChild(child->pidfd.get());
    if (absl::Status s = KillAndRemoveCgroups(cgroup_dirs, kCgroupDestroyTimeout); !s.ok()) {
      LogWarning("warm slot: %s", s.ToString());
    }
  };
  absl::StatusOr<WarmChild> child = SpawnWarmChild(cgroup_dirs);
  if (!child.ok()) {
    LogError("warm child: %s", child.status().ToString());
    end_slot(nullptr);
    return 1;
  }
  std::string line;
  if (AwaitGo(*child, control.get(), start_pipe, &line) != WarmEvent::kGo) {
    end_slot(&*child);
    return 0;
  }
  control.Reset();
  absl::StatusOr<std::string> bundle = ParseWarmGo(line);
  if (!bundle.ok()) {
    end_slot(&*child);
    start_pipe.ReportError(bundle.status());
    return 1;
  }
  return RunStarted(*bundle, start_pipe, Start(*bundle, forwarded, &*child));
}

int RunShim(const std::string& bundle, int start_fd) {
  sigset_t forwarded = PrepareShimProcess();
  if (!SetCloseOnExec(start_fd, "the start pipe")) return 2;
  StartPipe start_pipe(start_fd);
  if (bundle.empty() || bundle[0] != '/') {
    start_pipe.ReportError(absl::InvalidArgumentError(
        absl::StrCat("--bundle \"", bundle, "\" is not an absolute path")));
    return 1;
  }
  return RunStarted(bundle, start_pipe, Start(bundle, forwarded, nullptr));
}

namespace {

// From the start report to the exit record.
int RunStarted(const std::string& bundle, StartPipe& start_pipe, absl::StatusOr<Started> started) {
  if (!started.ok()) {
    start_pipe.ReportError(started.status());
    return 1;
  }
  start_pipe.ReportOk(started->container.pid);

  MonitoredIo io;
  io.pidfd = started->container.pidfd.get();
  io.stdout_read = std::move(started->container.stdout_read);
  io.stderr_read = std::move(started->container.stderr_read);
  io.tty_master = std::move(started->container.tty_master);
  io.stdin_write = std::move(started->container.stdin_write);
  io.log_fd = started->log.get();
  io.listen_fd = started->attach.get();
  io.signal_fd = started->signals.get();
  IoMonitor monitor(std::move(io));
  ExitRecord record = monitor.Run();
  record.oom_killed = ReadOomKilled(started->config.cgroup_dirs);
  // No fsync: after a host crash the runtime finds the container gone either way.
  absl::Status written =
      linux::WriteFileAtomic(BundleFile(bundle, kExitFile), SerializeExitRecord(record), 0644,
                             linux::Durability::kServiceCrash);
  // An interactive container is expected to have an attacher (`run -i`); one that connects
  // just after a quick process ended still gets its output and exit. Bounded: nobody may come.
  if (started->config.tty || started->config.stdin_open) monitor.AwaitFirstAttacher(2000);
  // The socket file goes first: an attacher arriving now is refused and reads exit.json.
  ::unlink(BundleFile(bundle, kAttachSocketFile).c_str());
  monitor.SendExit(record);
  if (!written.ok()) {
    LogError("exit code %d not recorded: %s", record.exit_code, written.ToString());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace nodeagent::runtime
