#include "services/runtime/linux/shim_launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/shim_protocol.h"

extern char** environ;

namespace nodeagent::runtime {
namespace {

// Reads the start pipe until EOF or the deadline.
absl::StatusOr<std::string> ReadReport(int fd, absl::Time deadline) {
  std::string report;
  char buf[4096];
  while (true) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return absl::DeadlineExceededError("node-shim did not report in time");
    struct pollfd pfd = {fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, static_cast<int>(left_ms));
    if (rc < 0 && errno != EINTR) return linux::LastErrnoStatus("poll start pipe");
    if (rc <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return linux::LastErrnoStatus("read start pipe");
    }
    if (n == 0) return report;
    report.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

static absl::StatusOr<LaunchedShim> SpawnAndReport(const std::string& shim_path,
                                                   std::vector<std::string> args,
                                                   absl::Duration timeout);

absl::StatusOr<LaunchedShim> LaunchShim(const std::string& shim_path, const std::string& bundle,
                                        absl::Duration timeout) {
  return SpawnAndReport(shim_path, {shim_path, "--bundle", bundle}, timeout);
}

absl::StatusOr<LaunchedShim> LaunchExecShim(const std::string& shim_path, const std::string& bundle,
                                            const std::string& exec_id, absl::Duration timeout) {
  return SpawnAndReport(shim_path, {shim_path, "exec", "--bundle", bundle, "--exec-id", exec_id},
                        timeout);
}

absl::StatusOr<pid_t> SpawnShimProcess(const std::string& shim_path, std::vector<std::string> args,
                                       int start_pipe_write, int control_read) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears close-on-exec on the copy, so only fds 3 and 4 (plus 0-2) reach the shim.
  posix_spawn_file_actions_adddup2(&actions, start_pipe_write, kShimStartPipeFd);
  if (control_read >= 0) {
    posix_spawn_file_actions_adddup2(&actions, control_read, kShimControlPipeFd);
  }
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask, default_signals;
  sigemptyset(&empty_mask);
  sigfillset(&default_signals);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  // Own session: a Ctrl-C at the terminal that started the node never reaches the shim.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);

  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, shim_path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return linux::ErrnoStatus(rc, absl::StrCat("spawn \"", shim_path, "\""));
  return pid;
}

static absl::StatusOr<LaunchedShim> SpawnAndReport(const std::string& shim_path,
                                                   std::vector<std::string> args,
                                                   absl::Duration timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return linux::LastErrnoStatus("pipe2");
  linux::UniqueFd read_end(fds[0]);
  linux::UniqueFd write_end(fds[1]);
  NA_ASSIGN_OR_RETURN(pid_t pid, SpawnShimProcess(shim_path, std::move(args), write_end.get()));
  write_end.Reset();

  absl::StatusOr<int> container_pid = ReadStartReport(read_end.get(), timeout);
  if (!container_pid.ok()) {
    if (absl::IsDeadlineExceeded(container_pid.status())) ::kill(pid, SIGKILL);
    return container_pid.status();
  }
  return LaunchedShim{pid, *container_pid};
}

absl::StatusOr<int> ReadStartReport(int fd, absl::Duration timeout) {
  auto report = ReadReport(fd, absl::Now() + timeout);
  if (!report.ok()) {
    return absl::Status(report.status().code(),
                        absl::StrCat("start container: ", report.status().message()));
  }
  absl::string_view line = absl::StripSuffix(*report, "\n");
  if (absl::ConsumePrefix(&line, "ok ")) {
    int container_pid = 0;
    if (!absl::SimpleAtoi(line, &container_pid) || container_pid <= 0) {
      return absl::InternalError(absl::StrCat("node-shim sent a bad pid: \"", *report, "\""));
    }
    return container_pid;
  }
  if (absl::ConsumePrefix(&line, "error ")) {
    size_t space = line.find(' ');
    int code = 0;
    if (space != absl::string_view::npos && absl::SimpleAtoi(line.substr(0, space), &code) &&
        code > 0 && code <= 16) {
      return absl::Status(static_cast<absl::StatusCode>(code), line.substr(space + 1));
    }
    return absl::InternalError(line);
  }
  if (report->empty()) {
    return absl::InternalError("node-shim exited without a start report; see its stderr");
  }
  return absl::InternalError(absl::StrCat("node-shim sent a bad start report: \"", *report, "\""));
}

}  // namespace nodeagent::runtime
