#include "services/runtime/linux/spawn.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/container_init.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

constexpr uint64_t kNamespaces =
    CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

absl::StatusOr<Pipe> MakePipe(const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return LastErrnoStatus(absl::StrCat("pipe for ", what));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool IsCgroup2(const std::string& dir) {
  struct statfs st;
  return ::statfs(dir.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

// Everything the child writes before exec, up to EOF (the write end closes at exec, or when
// the child exits).
absl::StatusOr<std::string> ReadToEof(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus("read error pipe");
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

absl::StatusOr<SpawnedContainer> SpawnContainer(const ShimConfig& config) {
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return LastErrnoStatus("open \"/dev/null\"");
  UniqueFd dev_null(null_fd);
  NA_ASSIGN_OR_RETURN(Pipe out, MakePipe("stdout"));
  NA_ASSIGN_OR_RETURN(Pipe err, MakePipe("stderr"));
  NA_ASSIGN_OR_RETURN(Pipe error, MakePipe("errors"));

  ContainerInitArgs args;
  args.stdin_fd = dev_null.get();
  args.stdout_fd = out.write.get();
  args.stderr_fd = err.write.get();
  args.error_fd = error.write.get();

  struct clone_args clone = {};
  clone.flags = kNamespaces | CLONE_PIDFD;
  clone.exit_signal = SIGCHLD;
  int pidfd = -1;
  clone.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
  UniqueFd cgroup_fd;
  if (config.cgroup_dirs.size() == 1 && IsCgroup2(config.cgroup_dirs[0])) {
    const std::string& dir = config.cgroup_dirs[0];
    int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return LastErrnoStatus(absl::StrCat("open cgroup \"", dir, "\""));
    cgroup_fd.Reset(fd);
    clone.flags |= CLONE_INTO_CGROUP;
    clone.cgroup = static_cast<uint64_t>(fd);
  } else {
    args.cgroups_to_join = config.cgroup_dirs;
  }

  // A raw clone3 returns twice like fork(); node-shim is single-threaded, so the child may run
  // ordinary code. (glibc's cached TID in the child is stale: nothing here uses it.)
  long pid = ::syscall(SYS_clone3, &clone, sizeof(clone));
  if (pid < 0) {
    return LastErrnoStatus(absl::StrCat("clone3 (new pid, mount, uts, ipc, net namespaces",
                                        cgroup_fd ? ", into cgroup" : "", ")"));
  }
  if (pid == 0) RunContainerInit(config, args);  // Never returns.

  UniqueFd child(pidfd);
  // Only the child may hold the write ends now, or EOF would never come.
  out.write.Reset();
  err.write.Reset();
  error.write.Reset();
  // EOF with nothing written is a successful exec. (A child that crashed before exec without
  // a word looks the same; its end then shows in the exit record, like any quick exit.)
  absl::StatusOr<std::string> message = ReadToEof(error.read.get());
  if (!message.ok()) {
    KillAndReapChild(child.get());
    return message.status();
  }
  if (!message->empty()) {
    // It _exit()s right after writing: reap it so that it leaves no zombie.
    (void)ReapChild(child.get());
    return DecodeInitError(*message);
  }
  SpawnedContainer spawned;
  spawned.pid = static_cast<pid_t>(pid);
  spawned.pidfd = std::move(child);
  spawned.stdout_read = std::move(out.read);
  spawned.stderr_read = std::move(err.read);
  return spawned;
}

absl::StatusOr<siginfo_t> ReapChild(int pidfd) {
  siginfo_t info = {};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) != 0) {
    if (errno != EINTR) return LastErrnoStatus("waitid on the container's pidfd");
  }
  return info;
}

void KillAndReapChild(int pidfd) {
  // Through the pidfd: never a recycled pid.
  ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  (void)ReapChild(pidfd);
}

}  // namespace nodeagent::runtime
