#include "services/runtime/linux/container_init.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/exec_lookup.h"
#include "services/runtime/linux/rootfs.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

// Docker's default hostname length: the first 12 characters of the id.
constexpr size_t kDefaultHostnameLength = 12;

absl::Status SetUpStdio(const ContainerInitArgs& args) {
  // dup2 clears close-on-exec on the copy; the originals (all O_CLOEXEC) go at exec.
  if (::dup2(args.stdin_fd, 0) < 0) return LastErrnoStatus("dup2 stdin");
  if (::dup2(args.stdout_fd, 1) < 0) return LastErrnoStatus("dup2 stdout");
  if (::dup2(args.stderr_fd, 2) < 0) return LastErrnoStatus("dup2 stderr");
  return absl::OkStatus();
}

// Undoes what the child inherited from node-shim's process state and must not pass on.
absl::Status ResetProcessState() {
  // node-shim blocks the signals it forwards (it reads them from a signalfd).
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return LastErrnoStatus("sigprocmask");
  // exec keeps ignored signals ignored; the command must start with every default.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // EINVAL for the signals glibc reserves: fine.
  }
  // If node-shim dies while this is being set up, nobody would ever report or reap it.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return LastErrnoStatus("prctl PR_SET_PDEATHSIG");
  // Its own session: the container is not hit by signals to node-shim's process group.
  if (::setsid() < 0) return LastErrnoStatus("setsid");
  // Exact modes for the device nodes and mount points made below; the command gets 022.
  ::umask(0);
  return absl::OkStatus();
}

absl::Status JoinCgroups(const ContainerInitArgs& args) {
  for (const std::string& dir : args.cgroups_to_join) {
    // "0" is the writing process itself.
    NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cgroup.procs", "0"));
  }
  // Now, after joining: the namespace's root is the cgroup the process is in at unshare
  // time, so the container sees its own cgroup as "/".
  if (::unshare(CLONE_NEWCGROUP) != 0) {
    return LastErrnoStatus("unshare cgroup namespace");
  }
  return absl::OkStatus();
}

absl::Status SetHostname(const ShimConfig& config) {
  std::string name = config.hostname;
  if (name.empty()) name = config.id.substr(0, kDefaultHostnameLength);
  if (::sethostname(name.data(), name.size()) != 0) {
    return LastErrnoStatus(absl::StrCat("sethostname \"", name, "\""));
  }
  return absl::OkStatus();
}

// A new network namespace has only "lo", and it is down.
absl::Status LoopbackUp() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return LastErrnoStatus("socket for loopback");
  UniqueFd sock(fd);
  struct ifreq ifr = {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return LastErrnoStatus("SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return LastErrnoStatus("SIOCSIFFLAGS lo up");
  return absl::OkStatus();
}

absl::Status EnterWorkingDir(const std::string& cwd) {
  if (cwd.empty() || cwd[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("working directory \"", cwd, "\" is not an absolute path"));
  }
  if (::chdir(cwd.c_str()) == 0) return absl::OkStatus();
  if (errno != ENOENT) return LastErrnoStatus(absl::StrCat("chdir \"", cwd, "\""));
  // Docker creates a missing working directory. After pivot_root every lookup, symlinks
  // included, stays inside the container.
  NA_RETURN_IF_ERROR(linux::MakeDirs(cwd, 0755));
  if (::chdir(cwd.c_str()) != 0) return LastErrnoStatus(absl::StrCat("chdir \"", cwd, "\""));
  return absl::OkStatus();
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Returns only on failure.
absl::Status SetUpAndExec(const ShimConfig& config, const ContainerInitArgs& args) {
  NA_RETURN_IF_ERROR(SetUpStdio(args));
  NA_RETURN_IF_ERROR(ResetProcessState());
  NA_RETURN_IF_ERROR(JoinCgroups(args));
  NA_ASSIGN_OR_RETURN(std::string rootfs, PrepareRootfs(config));
  NA_RETURN_IF_ERROR(SetHostname(config));
  NA_RETURN_IF_ERROR(LoopbackUp());
  NA_RETURN_IF_ERROR(PivotRoot(rootfs));
  // The working directory is made before the root turns read-only, as Docker does.
  NA_RETURN_IF_ERROR(EnterWorkingDir(config.cwd));
  if (config.readonly_rootfs) NA_RETURN_IF_ERROR(RemountRootReadonly());

  // Nothing of node-shim's may reach the command: every fd above 2 closes at exec, the
  // error pipe included (its closing is the success signal).
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) return LastErrnoStatus("close_range");

  NA_ASSIGN_OR_RETURN(std::string path, LookPath(config.args[0], PathFromEnv(config.env)));
  std::vector<char*> argv = CStrings(config.args);
  std::vector<char*> envp = CStrings(config.env);
  ::umask(022);
  // The command may outlive node-shim (it is meant to survive it); only setup may not.
  if (::prctl(PR_SET_PDEATHSIG, 0) != 0) return LastErrnoStatus("prctl PR_SET_PDEATHSIG");
  ::execve(path.c_str(), argv.data(), envp.data());
  return ExecErrorStatus(config.args[0], errno);
}

}  // namespace

std::string EncodeInitError(const absl::Status& status) {
  return absl::StrCat(static_cast<int>(status.code()), " ",
                      absl::StrReplaceAll(status.message(), {{"\n", " "}}));
}

absl::Status DecodeInitError(absl::string_view text) {
  size_t space = text.find(' ');
  int code = 0;
  if (space == absl::string_view::npos || !absl::SimpleAtoi(text.substr(0, space), &code) ||
      code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::InternalError(absl::StrCat("container init: malformed error \"", text, "\""));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), text.substr(space + 1));
}

void RunContainerInit(const ShimConfig& config, const ContainerInitArgs& args) {
  absl::Status status = SetUpAndExec(config, args);
  std::string message = EncodeInitError(status);
  // One write: the reader takes everything up to EOF as the message. Nothing useful is left
  // to do if it fails.
  (void)!::write(args.error_fd, message.data(), message.size());
  ::_exit(StartErrorExitCode(status));
}

}  // namespace nodeagent::runtime
