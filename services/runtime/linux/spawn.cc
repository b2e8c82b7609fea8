#include "services/runtime/linux/spawn.h"

#include <fcntl.h>
#include <linux/limits.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/cgroup_fs.h"
#include "services/runtime/linux/container_init.h"
#include "services/runtime/linux/exec_lookup.h"
#include "services/runtime/linux/userns_rootfs.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

absl::StatusOr<Pipe> MakePipe(const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return LastErrnoStatus(absl::StrCat("pipe for ", what));
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// What a namespace fd is, for errors: "net:[4026531840]".
std::string FdTarget(int fd) {
  char buf[64];
  ssize_t n = ::readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
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

std::string MapText(const std::vector<ShimIdMapping>& mappings) {
  std::string text;
  for (const ShimIdMapping& m : mappings) {
    absl::StrAppend(&text, m.container_id, " ", m.host_id, " ", m.size, "\n");
  }
  return text;
}

absl::Status WriteIdMaps(pid_t pid, const ShimConfig& config) {
  for (const auto& [file, mappings] : {std::make_pair("uid_map", &config.uid_mappings),
                                       std::make_pair("gid_map", &config.gid_mappings)}) {
    std::string path = absl::StrCat("/proc/", pid, "/", file);
    NA_ASSIGN_OR_RETURN(UniqueFd fd, linux::OpenFile(path, O_WRONLY));
    std::string text = MapText(*mappings);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      return LastErrnoStatus(absl::StrCat("write \"", path, "\" (", text.size(), " bytes)"));
    }
  }
  return absl::OkStatus();
}

// The pty master the child sends (SCM_RIGHTS) before exec.
absl::StatusOr<UniqueFd> ReceiveFd(int sock) {
  char dummy;
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
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return LastErrnoStatus("receive the pty master");
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (n != 1 || cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) {
    return absl::InternalError("receive the pty master: nothing was sent");
  }
  int fd;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  return UniqueFd(fd);
}

// The go-ahead for a user namespace child: one flag byte per slot of `fds` ('1': the fd
// follows, SCM_RIGHTS, in order; '0': none), then `trailer`.
absl::Status SendFds(int sock, const std::vector<int>& fds, absl::string_view trailer = "") {
  std::string flags;
  std::vector<int> present;
  for (int fd : fds) {
    flags.push_back(fd >= 0 ? '1' : '0');
    if (fd >= 0) present.push_back(fd);
  }
  flags.append(trailer.data(), trailer.size());
  if (present.size() > kMaxPassedFds) {
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", kMaxPassedFds, " bind mounts in a user namespace"));
  }
  struct iovec iov = {flags.data(), flags.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * present.size()));
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!present.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * present.size());
    std::memcpy(CMSG_DATA(cmsg), present.data(), sizeof(int) * present.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(flags.size())) {
    return LastErrnoStatus("hand the child its fds");
  }
  return absl::OkStatus();
}

}  // namespace

int NamespaceFlag(const std::string& type) {
  if (type == "pid") return CLONE_NEWPID;
  if (type == "net") return CLONE_NEWNET;
  if (type == "ipc") return CLONE_NEWIPC;
  if (type == "uts") return CLONE_NEWUTS;
  if (type == "mnt") return CLONE_NEWNS;
  if (type == "cgroup") return CLONE_NEWCGROUP;
  if (type == "user") return CLONE_NEWUSER;
  return 0;
}

absl::StatusOr<std::vector<NamespaceJoin>> OpenNamespaceJoins(
    const std::vector<ShimNamespace>& namespaces) {
  std::vector<NamespaceJoin> joins;
  for (const ShimNamespace& ns : namespaces) {
    if (ns.path.empty()) continue;
    if (ns.type == "user" || ns.type == "mnt") {
      return absl::UnimplementedError(
          absl::StrCat("joining a ", ns.type, " namespace (\"", ns.path, "\") is not supported"));
    }
    NamespaceJoin join;
    join.type = NamespaceFlag(ns.type);
    NA_ASSIGN_OR_RETURN(join.target, linux::OpenFile(ns.path, O_RDONLY));
    // The kernel checks the type; setns below would fail too, but less clearly.
    std::string own = absl::StrCat("/proc/self/ns/", ns.type);
    NA_ASSIGN_OR_RETURN(join.own, linux::OpenFile(own, O_RDONLY));
    joins.push_back(std::move(join));
  }
  return joins;
}

absl::Status EnterNamespaces(std::vector<NamespaceJoin>& joins, bool back) {
  for (NamespaceJoin& join : joins) {
    int fd = back ? join.own.get() : join.target.get();
    if (::setns(fd, join.type) != 0) {
      return LastErrnoStatus(absl::StrCat(back ? "return to own namespace" : "join namespace", " (",
                                          FdTarget(join.target.get()), ")"));
    }
  }
  return absl::OkStatus();
}

namespace {

// The pipes (or pty socket) and the error pipe of a child about to be cloned.
struct ChildIo {
  UniqueFd dev_null;
  Pipe out, err, in, error;
  UniqueFd console_parent, console_child;
  bool tty = false;

  static absl::StatusOr<ChildIo> Make(bool tty, bool stdin_open) {
    ChildIo io;
    io.tty = tty;
    if (tty) {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        return LastErrnoStatus("socketpair for the pty master");
      }
      io.console_parent.Reset(pair[0]);
      io.console_child.Reset(pair[1]);
    } else {
      NA_ASSIGN_OR_RETURN(io.out, MakePipe("stdout"));
      NA_ASSIGN_OR_RETURN(io.err, MakePipe("stderr"));
      if (stdin_open) {
        NA_ASSIGN_OR_RETURN(io.in, MakePipe("stdin"));
      } else {
        int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0) return LastErrnoStatus("open \"/dev/null\"");
        io.dev_null.Reset(null_fd);
      }
    }
    NA_ASSIGN_OR_RETURN(io.error, MakePipe("errors"));
    return io;
  }

  ChildFds Fds() const {
    ChildFds fds;
    if (!tty) {
      fds.stdin_fd = in.read ? in.read.get() : dev_null.get();
      fds.stdout_fd = out.write.get();
      fds.stderr_fd = err.write.get();
    }
    fds.console_fd = console_child.get();
    fds.error_fd = error.write.get();
    return fds;
  }

  // In the parent after the clone: only the child may hold its ends, or EOF would never come.
  void CloseChildEnds() {
    out.write.Reset();
    err.write.Reset();
    in.read.Reset();
    console_child.Reset();
    error.write.Reset();
  }

  // Waits for the child's exec (or error) and takes the parent's ends.
  absl::StatusOr<SpawnedContainer> Finish(pid_t pid, UniqueFd child) {
    // EOF with nothing written is a successful exec. (A child that crashed before exec
    // without a word looks the same; its end then shows in the exit record.)
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
    if (tty) {
      absl::StatusOr<UniqueFd> master = ReceiveFd(console_parent.get());
      if (!master.ok()) {
        KillAndReapChild(child.get());
        return master.status();
      }
      spawned.tty_master = std::move(*master);
    }
    spawned.pid = pid;
    spawned.pidfd = std::move(child);
    spawned.stdout_read = std::move(out.read);
    spawned.stderr_read = std::move(err.read);
    spawned.stdin_write = std::move(in.write);
    return spawned;
  }
};

// clone3 with a pidfd (into *pidfd) and SIGCHLD at exit, plus the given CLONE_NEW* flags, and
// straight into a cgroup v2 directory when `cgroup_fd` >= 0. Returns twice like fork(): 0 in
// the child; -1 with errno set on failure.
long CloneWithPidfd(uint64_t flags, int* pidfd, int cgroup_fd = -1) {
  struct clone_args clone = {};
  clone.flags = flags | CLONE_PIDFD;
  clone.exit_signal = SIGCHLD;
  clone.pidfd = reinterpret_cast<uintptr_t>(pidfd);
  if (cgroup_fd >= 0) {
    clone.flags |= CLONE_INTO_CGROUP;
    clone.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  return ::syscall(SYS_clone3, &clone, sizeof(clone));
}

}  // namespace

absl::StatusOr<SpawnedContainer> SpawnContainer(const ShimConfig& config) {
  NA_ASSIGN_OR_RETURN(std::vector<ShimNamespace> namespaces, EffectiveNamespaces(config));
  NA_ASSIGN_OR_RETURN(std::vector<NamespaceJoin> joins, OpenNamespaceJoins(namespaces));
  uint64_t new_namespaces = 0;
  for (const ShimNamespace& ns : namespaces) {
    if (ns.path.empty()) new_namespaces |= NamespaceFlag(ns.type);
  }

  NA_ASSIGN_OR_RETURN(ChildIo io, ChildIo::Make(config.tty, config.stdin_open));
  ChildFds fds = io.Fds();
  ContainerInitArgs args;
  args.new_namespaces = new_namespaces;
  args.stdin_fd = fds.stdin_fd;
  args.stdout_fd = fds.stdout_fd;
  args.stderr_fd = fds.stderr_fd;
  args.console_fd = fds.console_fd;
  args.error_fd = fds.error_fd;
  // With a new user namespace: a socket on which node-shim sends the go-ahead (and the rootfs
  // it mounted, userns_rootfs.h) once the id maps are written.
  UniqueFd sync_parent, sync_child;
  if (new_namespaces & CLONE_NEWUSER) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      return LastErrnoStatus("socketpair for the user namespace sync");
    }
    sync_parent.Reset(pair[0]);
    sync_child.Reset(pair[1]);
    args.sync_fd = sync_child.get();
  }

  UniqueFd cgroup_fd;
  if (config.cgroup_dirs.size() == 1 && IsCgroup2(config.cgroup_dirs[0])) {
    const std::string& dir = config.cgroup_dirs[0];
    int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return LastErrnoStatus(absl::StrCat("open cgroup \"", dir, "\""));
    cgroup_fd.Reset(fd);
  } else if (!(new_namespaces & CLONE_NEWUSER)) {
    args.cgroups_to_join = config.cgroup_dirs;
  }
  // Root of a new user namespace may not write the host's cgroup.procs: node-shim places it.
  const bool shim_joins_cgroups = (new_namespaces & CLONE_NEWUSER) && !cgroup_fd;

  NA_RETURN_IF_ERROR(EnterNamespaces(joins, /*back=*/false));
  // A raw clone3 returns twice like fork(); node-shim is single-threaded, so the child may run
  // ordinary code. (glibc's cached TID in the child is stale: nothing here uses it.)
  int pidfd = -1;
  // The cgroup namespace is unshared by the child once it is in its cgroups.
  long pid = CloneWithPidfd(new_namespaces & ~static_cast<uint64_t>(CLONE_NEWCGROUP), &pidfd,
                            cgroup_fd ? cgroup_fd.get() : -1);
  int clone_errno = errno;
  if (pid == 0) RunContainerInit(config, args);  // Never returns.
  if (absl::Status back = EnterNamespaces(joins, /*back=*/true); !back.ok()) {
    // node-shim would stay in the container's namespaces: not worth going on.
    if (pid > 0) KillAndReapChild(pidfd);
    return back;
  }
  if (pid < 0) {
    return linux::ErrnoStatus(clone_errno,
                              absl::StrCat("clone3 (namespaces 0x", absl::Hex(new_namespaces),
                                           cgroup_fd ? ", into cgroup" : "", ")"));
  }
  UniqueFd child(pidfd);
  io.CloseChildEnds();
  sync_child.Reset();
  if (sync_parent) {
    absl::Status mapped = WriteIdMaps(static_cast<pid_t>(pid), config);
    for (size_t i = 0; mapped.ok() && shim_joins_cgroups && i < config.cgroup_dirs.size(); ++i) {
      mapped = WriteCgroupFile(config.cgroup_dirs[i], "cgroup.procs", absl::StrCat(pid));
    }
    absl::StatusOr<UserNamespaceRootfs> root = absl::InternalError("not mounted");
    if (mapped.ok()) {
      root = MountUserNamespaceRootfs(static_cast<pid_t>(pid), config);
      if (!root.ok()) mapped = root.status();
    }
    if (mapped.ok()) {
      std::vector<int> passed = {root->root.get()};
      for (const UniqueFd& bind : root->binds) passed.push_back(bind.get());
      mapped = SendFds(sync_parent.get(), passed);
    }
    if (!mapped.ok()) {
      KillAndReapChild(child.get());
      return mapped;
    }
  }
  return io.Finish(static_cast<pid_t>(pid), std::move(child));
}

absl::StatusOr<ReceivedFds> ReceiveFds(int sock, size_t slots, size_t max_extra) {
  std::string buf(slots + max_extra, '\0');
  struct iovec iov = {buf.data(), buf.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxPassedFds));
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return LastErrnoStatus("receive fds from node-shim");
  if (static_cast<size_t>(n) < slots) return absl::CancelledError("node-shim sent nothing");
  std::vector<int> received;
  for (struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    std::vector<int> fds(count);
    std::memcpy(fds.data(), CMSG_DATA(cmsg), count * sizeof(int));
    received.insert(received.end(), fds.begin(), fds.end());
  }
  ReceivedFds out;
  out.fds.resize(slots);
  size_t next = 0;
  for (size_t i = 0; i < slots; ++i) {
    if (buf[i] != '1') continue;
    if (next >= received.size()) return absl::InternalError("fds from node-shim missing");
    out.fds[i].Reset(received[next++]);
  }
  out.extra = buf.substr(slots, static_cast<size_t>(n) - slots);
  return out;
}

namespace {

// The fds a warm child gets with its go, in this order (SendFds flags).
// The namespaces a warm child is cloned into (its cgroup namespace it makes itself).
constexpr uint64_t kWarmNamespaces =
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;

// The namespaces to join come as fds, opened by node-shim: the child's mount table is the
// host's from when it was cloned, and may not show a namespace bind-mounted since (the
// network service's netns files are below a private mount).
enum WarmFd {
  kWarmStdin,
  kWarmStdout,
  kWarmStderr,
  kWarmConsole,
  kWarmError,
  kWarmNetNs,
  kWarmIpcNs,
  kWarmFdCount
};

// The go: the bundle path after the flag bytes, and the fds.
struct WarmGo {
  std::string bundle;
  std::vector<UniqueFd> fds;  // kWarmFdCount slots; empty where none was sent.
};

absl::StatusOr<WarmGo> ReceiveWarmGo(int sock) {
  NA_ASSIGN_OR_RETURN(ReceivedFds got, ReceiveFds(sock, kWarmFdCount, PATH_MAX));
  return WarmGo{std::move(got.extra), std::move(got.fds)};
}

// Joins the net and ipc namespaces node-shim sent; returns the CLONE_NEW* flags of the
// namespaces that stay this process's own (new) ones.
absl::StatusOr<uint64_t> JoinWarmNamespaces(const WarmGo& go) {
  uint64_t fresh = kWarmNamespaces;
  for (auto [slot, type] : {std::pair{kWarmNetNs, CLONE_NEWNET}, {kWarmIpcNs, CLONE_NEWIPC}}) {
    const int fd = go.fds[slot].get();
    if (fd < 0) continue;
    if (::setns(fd, type) != 0) {
      return LastErrnoStatus(absl::StrCat("join namespace (", FdTarget(fd), ")"));
    }
    fresh &= ~static_cast<uint64_t>(type);
  }
  return fresh;
}

// The warm child: ready, then the container once the go comes. Never returns.
[[noreturn]] void RunWarmChild(int sock, const std::vector<std::string>& cgroup_dirs) {
  // Before the go there is no error pipe: a failure ends the child, which node-shim sees.
  // If node-shim dies first, so does the child.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ::_exit(1);
  // As PrepareRootfs will: mounts copied from the host must not carry ours back out.
  if (::mount("", "/", "", MS_REC | MS_SLAVE, nullptr) != 0) ::_exit(1);
  for (const std::string& dir : cgroup_dirs) {
    if (!WriteCgroupFile(dir, "cgroup.procs", "0").ok()) ::_exit(1);
  }
  if (::unshare(CLONE_NEWCGROUP) != 0) ::_exit(1);
  if (::write(sock, "r", 1) != 1) ::_exit(1);
  absl::StatusOr<WarmGo> go = ReceiveWarmGo(sock);
  if (!go.ok()) ::_exit(1);
  const int error_fd = go->fds[kWarmError].get();
  if (error_fd < 0) ::_exit(1);
  absl::Status status = [&]() -> absl::Status {
    NA_ASSIGN_OR_RETURN(ShimConfig config, LoadShimConfig(go->bundle));
    NA_ASSIGN_OR_RETURN(uint64_t fresh, JoinWarmNamespaces(*go));
    ContainerInitArgs args;
    args.new_namespaces = fresh;  // The cgroup namespace is made already.
    args.stdin_fd = go->fds[kWarmStdin].get();
    args.stdout_fd = go->fds[kWarmStdout].get();
    args.stderr_fd = go->fds[kWarmStderr].get();
    args.console_fd = go->fds[kWarmConsole].get();
    args.error_fd = error_fd;
    RunContainerInit(config, args);  // Never returns.
  }();
  std::string message = EncodeInitError(status);
  (void)!::write(error_fd, message.data(), message.size());
  ::_exit(StartErrorExitCode(status));
}

}  // namespace

absl::StatusOr<WarmChild> SpawnWarmChild(const std::vector<std::string>& cgroup_dirs) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return LastErrnoStatus("socketpair for the warm child");
  }
  UniqueFd parent_end(pair[0]);
  UniqueFd child_end(pair[1]);
  int pidfd = -1;
  // node-shim is single-threaded here too (see SpawnContainer).
  long pid = CloneWithPidfd(kWarmNamespaces, &pidfd);
  if (pid < 0) return LastErrnoStatus("clone3 (warm child)");
  if (pid == 0) {
    parent_end.Reset();
    RunWarmChild(child_end.get(), cgroup_dirs);
  }
  WarmChild child;
  child.pid = static_cast<pid_t>(pid);
  child.pidfd.Reset(pidfd);
  child.sock = std::move(parent_end);
  return child;
}

absl::StatusOr<SpawnedContainer> ResumeWarmChild(WarmChild child, const ShimConfig& config) {
  absl::StatusOr<ChildIo> io = ChildIo::Make(config.tty, config.stdin_open);
  if (!io.ok()) {
    KillAndReapChild(child.pidfd.get());
    return io.status();
  }
  // Opened here, in the host's mount namespace (see WarmFd).
  absl::StatusOr<std::vector<ShimNamespace>> namespaces = EffectiveNamespaces(config);
  absl::StatusOr<std::vector<NamespaceJoin>> joins =
      namespaces.ok() ? OpenNamespaceJoins(*namespaces) : namespaces.status();
  if (!joins.ok()) {
    KillAndReapChild(child.pidfd.get());
    return joins.status();
  }
  ChildFds fds = io->Fds();
  std::vector<int> passed(kWarmFdCount, -1);
  for (const NamespaceJoin& join : *joins) {
    if (join.type == CLONE_NEWNET) passed[kWarmNetNs] = join.target.get();
    if (join.type == CLONE_NEWIPC) passed[kWarmIpcNs] = join.target.get();
  }
  passed[kWarmStdin] = fds.stdin_fd;
  passed[kWarmStdout] = fds.stdout_fd;
  passed[kWarmStderr] = fds.stderr_fd;
  passed[kWarmConsole] = fds.console_fd;
  passed[kWarmError] = fds.error_fd;
  if (absl::Status sent = SendFds(child.sock.get(), passed, config.bundle); !sent.ok()) {
    KillAndReapChild(child.pidfd.get());
    return Annotate(sent, "warm child");
  }
  io->CloseChildEnds();
  return io->Finish(child.pid, std::move(child.pidfd));
}

absl::StatusOr<SpawnedContainer> SpawnWithIo(
    bool tty, bool stdin_open, const std::function<absl::Status(const ChildFds&)>& run) {
  NA_ASSIGN_OR_RETURN(ChildIo io, ChildIo::Make(tty, stdin_open));
  ChildFds fds = io.Fds();
  int pidfd = -1;
  long pid = CloneWithPidfd(0, &pidfd);
  if (pid < 0) return LastErrnoStatus("clone3");
  if (pid == 0) {
    absl::Status status = run(fds);
    std::string message = EncodeInitError(status);
    (void)!::write(fds.error_fd, message.data(), message.size());
    ::_exit(StartErrorExitCode(status));
  }
  UniqueFd child(pidfd);
  io.CloseChildEnds();
  return io.Finish(static_cast<pid_t>(pid), std::move(child));
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
