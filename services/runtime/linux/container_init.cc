#include "services/runtime/linux/container_init.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
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
#include "services/runtime/linux/security.h"
#include "services/runtime/linux/spawn.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

// Docker's default hostname length: the first 12 characters of the id.
constexpr size_t kDefaultHostnameLength = 12;

absl::Status SetUpStdio(const ContainerInitArgs& args) {
  if (args.stdin_fd < 0) return absl::OkStatus();  // A tty: its slave comes at the end.
  // dup2 clears close-on-exec on the copy; the originals (all O_CLOEXEC) go at exec.
  if (::dup2(args.stdin_fd, 0) < 0) return LastErrnoStatus("dup2 stdin");
  if (::dup2(args.stdout_fd, 1) < 0) return LastErrnoStatus("dup2 stdout");
  if (::dup2(args.stderr_fd, 2) < 0) return LastErrnoStatus("dup2 stderr");
  return absl::OkStatus();
}

absl::Status JoinCgroups(const ContainerInitArgs& args) {
  for (const std::string& dir : args.cgroups_to_join) {
    // "0" is the writing process itself.
    NA_RETURN_IF_ERROR(WriteCgroupFile(dir, "cgroup.procs", "0"));
  }
  if ((args.new_namespaces & CLONE_NEWCGROUP) == 0) return absl::OkStatus();
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

absl::Status EnterWorkingDir(const std::string& cwd, bool create) {
  if (cwd.empty() || cwd[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("working directory \"", cwd, "\" is not an absolute path"));
  }
  if (::chdir(cwd.c_str()) == 0) return absl::OkStatus();
  if (errno != ENOENT || !create) return LastErrnoStatus(absl::StrCat("chdir \"", cwd, "\""));
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

// Waits until node-shim has written the id maps and mounted the rootfs (userns_rootfs.h), then
// becomes root of the user namespace. Returns the rootfs's O_PATH fd and, index-aligned with
// config.mounts, the bind sources node-shim cloned.
absl::StatusOr<std::vector<UniqueFd>> WaitForIdMaps(int sync_fd, size_t slots) {
  // Every flag byte, not EOF: this process holds a copy of the other end until exec.
  absl::StatusOr<ReceivedFds> got = ReceiveFds(sync_fd, slots, 0);
  if (!got.ok()) {
    return absl::InternalError(absl::StrCat("user namespace: node-shim did not write the id maps (",
                                            got.status().message(), ")"));
  }
  std::vector<UniqueFd> out = std::move(got->fds);
  if (!out[0]) return absl::InternalError("user namespace: node-shim sent no rootfs");
  if (::setresgid(0, 0, 0) != 0) return LastErrnoStatus("setgid 0 in the user namespace");
  if (::setresuid(0, 0, 0) != 0) return LastErrnoStatus("setuid 0 in the user namespace");
  return out;
}

// Returns only on failure.
absl::Status SetUpAndExec(const ShimConfig& config, const ContainerInitArgs& args) {
  NA_RETURN_IF_ERROR(SetUpStdio(args));
  NA_RETURN_IF_ERROR(ResetProcessState());
  std::vector<UniqueFd> prepared;  // The rootfs, then the bind sources (user namespace).
  if (args.sync_fd >= 0) {
    NA_ASSIGN_OR_RETURN(prepared, WaitForIdMaps(args.sync_fd, 1 + config.mounts.size()));
  }
  NA_ASSIGN_OR_RETURN(ProcessSetup setup, FirstProcessSetup(config));
  setup.console_fd = args.console_fd;
  NA_RETURN_IF_ERROR(JoinCgroups(args));
  int mounted_root = prepared.empty() ? -1 : prepared[0].get();
  std::vector<UniqueFd> binds;
  for (size_t i = 1; i < prepared.size(); ++i) binds.push_back(std::move(prepared[i]));
  NA_ASSIGN_OR_RETURN(std::string rootfs, PrepareRootfs(config, mounted_root, std::move(binds)));
  if (args.new_namespaces & CLONE_NEWUTS) NA_RETURN_IF_ERROR(SetHostname(config));
  if (args.new_namespaces & CLONE_NEWNET) NA_RETURN_IF_ERROR(LoopbackUp());
  NA_RETURN_IF_ERROR(PivotRoot(rootfs));
  if (!config.privileged || config.masked_paths.has_value() || config.readonly_paths.has_value()) {
    std::vector<std::string> masked, readonly;
    if (config.masked_paths.has_value()) {
      masked = *config.masked_paths;
    } else if (!config.privileged) {
      masked.assign(std::begin(kDefaultMaskedPaths), std::end(kDefaultMaskedPaths));
    }
    if (config.readonly_paths.has_value()) {
      readonly = *config.readonly_paths;
    } else if (!config.privileged) {
      readonly.assign(std::begin(kDefaultReadonlyPaths), std::end(kDefaultReadonlyPaths));
    }
    NA_RETURN_IF_ERROR(MaskPaths(masked, readonly));
  }
  // The working directory is made before the root turns read-only, as Docker does.
  NA_RETURN_IF_ERROR(EnterWorkingDir(config.cwd, /*create=*/true));
  if (config.readonly_rootfs) NA_RETURN_IF_ERROR(RemountRootReadonly());
  return FinishAndExec(setup);
}

// The pty: allocated in the container's devpts (/dev/ptmx is pts/ptmx there), its slave
// made fds 0-2 and the controlling terminal, its master sent to node-shim.
absl::Status SetUpTerminal(const ProcessSetup& setup, uid_t uid) {
  int master_fd = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master_fd < 0) return LastErrnoStatus("open \"/dev/ptmx\" in the container");
  UniqueFd master(master_fd);
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) != 0) return LastErrnoStatus("unlock pty");
  int slave_fd = ::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave_fd < 0) return LastErrnoStatus("open pty slave (TIOCGPTPEER)");
  UniqueFd slave(slave_fd);
  if (setup.tty_rows != 0 || setup.tty_cols != 0) {
    struct winsize ws = {};
    ws.ws_row = setup.tty_rows;
    ws.ws_col = setup.tty_cols;
    if (::ioctl(master.get(), TIOCSWINSZ, &ws) != 0) return LastErrnoStatus("set window size");
  }
  // The user owns its terminal, as with runc.
  if (uid != 0 && ::fchown(slave.get(), uid, static_cast<gid_t>(-1)) != 0) {
    return LastErrnoStatus("chown pty slave");
  }
  for (int fd = 0; fd <= 2; ++fd) {
    if (::dup2(slave.get(), fd) < 0) return LastErrnoStatus("dup2 pty slave");
  }
  // We lead a session of our own (ResetProcessState) without a terminal yet.
  if (::ioctl(0, TIOCSCTTY, 0) != 0) return LastErrnoStatus("TIOCSCTTY");
  char dummy = 't';
  struct iovec iov = {&dummy, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  int sent_fd = master.get();
  std::memcpy(CMSG_DATA(cmsg), &sent_fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(setup.console_fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return LastErrnoStatus("send pty master to node-shim");
  return absl::OkStatus();
}

std::vector<std::string> WithDefault(std::vector<std::string> env, absl::string_view key,
                                     absl::string_view value, bool override_existing) {
  std::string prefix = absl::StrCat(key, "=");
  for (std::string& e : env) {
    if (absl::StartsWith(e, prefix)) {
      if (override_existing) e = absl::StrCat(prefix, value);
      return env;
    }
  }
  env.push_back(absl::StrCat(prefix, value));
  return env;
}

// PID 1 of a container started with init: the command runs as its child.
[[noreturn]] void RunInit(pid_t child) {
  // Orphans of a joined pid namespace come to us too.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigset_t all;
  sigfillset(&all);
  while (true) {
    siginfo_t info;
    int sig = ::sigwaitinfo(&all, &info);
    if (sig < 0) continue;  // EINTR.
    if (sig != SIGCHLD) {
      // To the command's process group (the foreground job with a tty), else to it alone.
      if (::kill(-child, sig) != 0) ::kill(child, sig);
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != child) continue;  // A zombie reaped, nothing more.
      ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
  }
}

}  // namespace

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

absl::StatusOr<ProcessSetup> FirstProcessSetup(const ShimConfig& config) {
  ProcessSetup setup;
  setup.args = config.args;
  setup.env = config.env;
  setup.cwd = config.cwd;
  setup.create_cwd = true;
  setup.user = config.user;
  setup.tty = config.tty;
  setup.tty_rows = config.tty_rows;
  setup.tty_cols = config.tty_cols;
  NA_ASSIGN_OR_RETURN(setup.capabilities,
                      EffectiveCapabilities(config.cap_add, config.cap_drop, config.privileged));
  std::string seccomp = config.seccomp;
  if (seccomp.empty()) seccomp = config.privileged ? "unconfined" : "default";
  if (IsSeccompProfileJson(seccomp)) {
    NA_ASSIGN_OR_RETURN(setup.seccomp_profile, ParseSeccompProfile(seccomp));
  } else if (seccomp != "default" && seccomp != "unconfined") {
    return absl::InvalidArgumentError(absl::StrCat(
        "seccomp profile \"", seccomp, "\": want \"default\", \"unconfined\" or a JSON profile"));
  }
  setup.seccomp = seccomp != "unconfined";
  setup.no_new_privs = config.no_new_privs.value_or(!config.privileged);
  setup.init = config.init;
  setup.init_prompt = config.init_prompt;
  return setup;
}

absl::Status FinishAndExec(const ProcessSetup& setup) {
  if (!setup.create_cwd) {
    NA_RETURN_IF_ERROR(EnterWorkingDir(setup.cwd.empty() ? "/" : setup.cwd, false));
  }
  NA_ASSIGN_OR_RETURN(ResolvedUser user, ResolveUserInRoot(setup.user));
  if (setup.tty) NA_RETURN_IF_ERROR(SetUpTerminal(setup, user.uid));
  std::vector<std::string> env = setup.env;
  if (!user.home.empty()) env = WithDefault(std::move(env), "HOME", user.home, false);
  if (setup.init && !setup.init_prompt.empty()) {
    env = WithDefault(std::move(env), "PS1", setup.init_prompt, true);
  }

  // Nothing of node-shim's may reach the command: every fd above 2 closes at exec, the
  // error pipe included (its closing is the success signal).
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) return LastErrnoStatus("close_range");
  NA_ASSIGN_OR_RETURN(std::string path, LookPath(setup.args[0], PathFromEnv(env)));
  std::vector<char*> argv = CStrings(setup.args);
  std::vector<char*> envp = CStrings(env);
  ::umask(022);

  // Privileges last. The filter goes in before the capabilities drop so that it can be
  // installed without no_new_privs; every syscall after it is one the filter allows.
  if (setup.no_new_privs) NA_RETURN_IF_ERROR(SetNoNewPrivs());
  if (setup.seccomp && setup.seccomp_profile.has_value()) {
    NA_RETURN_IF_ERROR(InstallSeccompProfile(*setup.seccomp_profile, setup.capabilities));
  } else if (setup.seccomp) {
    NA_RETURN_IF_ERROR(InstallDefaultSeccomp(setup.capabilities));
  }
  NA_RETURN_IF_ERROR(ApplyUserAndCapabilities(user, setup.capabilities));

  if (setup.init) {
    // Every signal waits in the mask until sigwaitinfo (init) or exec (the command, which
    // unblocks first): none is lost between fork and either.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    ::sigprocmask(SIG_BLOCK, &all, nullptr);
    pid_t child = ::fork();
    if (child < 0) return LastErrnoStatus("fork the command under init");
    if (child > 0) {
      // init: PID 1 for good. The command's exec (or its error) settles the error pipe.
      ::prctl(PR_SET_PDEATHSIG, 0);
      ::close_range(3, ~0U, 0);
      RunInit(child);
    }
    // The command: its own process group, the terminal's foreground one.
    ::setpgid(0, 0);
    if (setup.tty) ::tcsetpgrp(0, ::getpid());  // SIGTTOU is blocked: no stop.
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  }
  // The command may outlive node-shim (it is meant to survive it); only setup may not.
  if (::prctl(PR_SET_PDEATHSIG, 0) != 0) return LastErrnoStatus("prctl PR_SET_PDEATHSIG");
  ::execve(path.c_str(), argv.data(), envp.data());
  return ExecErrorStatus(setup.args[0], errno);
}

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
