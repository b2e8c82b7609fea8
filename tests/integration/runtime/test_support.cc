#include "tests/integration/runtime/test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/attach_socket.h"
#include "services/runtime/linux/cgroup_parse.h"

#ifndef NODE_SHIM_PATH
#error "NODE_SHIM_PATH must name the node-shim binary under test"
#endif

namespace nodeagent::runtime::testutil {

using linux::LastErrnoStatus;
using linux::UniqueFd;

bool IsRoot() { return ::geteuid() == 0; }

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = absl::StrCat("/var/tmp/", prefix, "-XXXXXX");
  if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  if (absl::Status s = linux::RemoveTree(path_); !s.ok()) {
    fprintf(stderr, "TempDir: %s\n", s.ToString().c_str());
  }
}

absl::Status WriteText(const std::string& path, const std::string& text, mode_t mode) {
  NA_ASSIGN_OR_RETURN(UniqueFd fd, linux::OpenFile(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
  NA_RETURN_IF_ERROR(linux::WriteAll(fd.get(), text));
  if (::fchmod(fd.get(), mode) != 0) return LastErrnoStatus(absl::StrCat("chmod ", path));
  return absl::OkStatus();
}

absl::Status BuildBusyboxRootfs(const std::string& dir) {
  for (const char* sub : {"bin", "proc", "sys", "dev", "tmp", "etc", "root"}) {
    NA_RETURN_IF_ERROR(linux::MakeDirs(absl::StrCat(dir, "/", sub)));
  }
  ::chmod(absl::StrCat(dir, "/tmp").c_str(), 01777);
  NA_ASSIGN_OR_RETURN(std::string busybox, linux::ReadFile("/bin/busybox"));
  NA_RETURN_IF_ERROR(WriteText(absl::StrCat(dir, "/bin/busybox"), busybox, 0755));
  FILE* list = ::popen("/bin/busybox --list", "re");
  if (list == nullptr) return LastErrnoStatus("popen busybox --list");
  char line[256];
  absl::Status status;
  while (status.ok() && ::fgets(line, sizeof(line), list) != nullptr) {
    std::string applet(absl::StripTrailingAsciiWhitespace(line));
    if (applet.empty() || applet == "busybox") continue;
    std::string link = absl::StrCat(dir, "/bin/", applet);
    if (::symlink("busybox", link.c_str()) != 0 && errno != EEXIST) {
      status = LastErrnoStatus(absl::StrCat("symlink ", link));
    }
  }
  if (::pclose(list) != 0 && status.ok()) status = absl::InternalError("busybox --list failed");
  NA_RETURN_IF_ERROR(status);
  return WriteText(absl::StrCat(dir, "/etc/motd"), "lower motd\n");
}

namespace {

absl::StatusOr<ShimProcess> StartNodeShim(const std::vector<std::string>& args, int leak_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return LastErrnoStatus("pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return LastErrnoStatus("fork");
  if (pid == 0) {
    // dup2 onto 3 clears close-on-exec; so does clearing it on the leak fd.
    if (write_end.get() == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else {
      ::dup2(write_end.get(), 3);
    }
    if (leak_fd >= 0) ::fcntl(leak_fd, F_SETFD, 0);
    std::vector<const char*> argv = {NODE_SHIM_PATH};
    for (const std::string& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    ::execv(argv[0], const_cast<char**>(argv.data()));
    ::_exit(127);
  }
  write_end.Reset();
  ShimProcess shim;
  shim.pid = pid;
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(read_end.get(), buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus("read start pipe");
    }
    text.append(buf, static_cast<size_t>(n));
  }
  shim.start_line = std::string(absl::StripSuffix(text, "\n"));
  if (absl::StartsWith(shim.start_line, "ok ")) {
    (void)absl::SimpleAtoi(shim.start_line.substr(3), &shim.container_pid);
  }
  return shim;
}

}  // namespace

absl::StatusOr<ShimProcess> StartShim(const ShimConfig& config, int leak_fd) {
  NA_RETURN_IF_ERROR(linux::MakeDirs(config.bundle));
  NA_RETURN_IF_ERROR(
      WriteText(absl::StrCat(config.bundle, "/", kShimConfigFile), SerializeShimConfig(config)));
  return StartNodeShim({"--bundle", config.bundle}, leak_fd);
}

absl::StatusOr<ShimProcess> StartExecShim(const std::string& bundle, const std::string& exec_id,
                                          const ShimExecProcess& process) {
  std::string dir = absl::StrCat(bundle, "/", kExecDirPrefix, exec_id);
  NA_RETURN_IF_ERROR(linux::MakeDirs(dir));
  NA_RETURN_IF_ERROR(
      WriteText(absl::StrCat(dir, "/", kExecProcessFile), SerializeExecProcess(process)));
  return StartNodeShim({"exec", "--bundle", bundle, "--exec-id", exec_id}, -1);
}

absl::StatusOr<Attacher> Attacher::Connect(const std::string& dir) {
  Attacher a;
  NA_ASSIGN_OR_RETURN(a.fd_, ConnectAttachSocket(dir));
  return a;
}

absl::Status Attacher::Send(uint8_t type, const std::string& payload) {
  return linux::WriteAll(fd_.get(), EncodeAttachFrame(type, payload));
}

absl::Status Attacher::Resize(uint16_t rows, uint16_t cols) {
  return linux::WriteAll(fd_.get(), EncodeResizeFrame(rows, cols));
}

bool Attacher::ReadSome(absl::Time deadline) {
  if (done_) return false;
  int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
  if (left <= 0) return false;
  struct pollfd p = {fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char buf[65536];
  ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
  if (n <= 0) {
    done_ = true;
    return false;
  }
  reader_.Feed(absl::string_view(buf, static_cast<size_t>(n)));
  while (true) {
    auto frame = reader_.Next();
    if (!frame.ok() || !frame->has_value()) break;
    const AttachFrame& f = **frame;
    if (f.type == kAttachStdout) seen_.out += f.payload;
    if (f.type == kAttachStderr) seen_.err += f.payload;
    if (f.type == kAttachExit) {
      seen_.exit = ParseExitRecord(f.payload);
      done_ = true;
    }
  }
  return true;
}

bool Attacher::WaitForOutput(const std::string& needle, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!absl::StrContains(seen_.out, needle)) {
    if (!ReadSome(deadline)) return absl::StrContains(seen_.out, needle);
  }
  return true;
}

AttachResult Attacher::ReadToExit(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (ReadSome(deadline)) {
  }
  return seen_;
}

absl::StatusOr<int> WaitShim(ShimProcess& shim, absl::Duration timeout) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, shim.pid, 0));
  if (pidfd < 0) return LastErrnoStatus("pidfd_open");
  UniqueFd fd(pidfd);
  struct pollfd p = {fd.get(), POLLIN, 0};
  int ready = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready == 0) {
    KillShim(shim);
    ::waitpid(shim.pid, nullptr, 0);
    shim.pid = -1;
    return absl::DeadlineExceededError("node-shim did not exit in time (killed)");
  }
  int status = 0;
  if (::waitpid(shim.pid, &status, 0) < 0) return LastErrnoStatus("waitpid node-shim");
  shim.pid = -1;
  return status;
}

void KillShim(const ShimProcess& shim) {
  if (shim.container_pid > 0) ::kill(shim.container_pid, SIGKILL);
  if (shim.pid > 0) ::kill(shim.pid, SIGKILL);
}

absl::Status ReadContainerLog(const std::string& bundle, std::string& out, std::string& err) {
  NA_ASSIGN_OR_RETURN(std::string text,
                      linux::ReadFile(absl::StrCat(bundle, "/", kContainerLogFile)));
  NA_ASSIGN_OR_RETURN(DecodedLogRecords decoded, DecodeLogRecords(text));
  if (decoded.consumed != text.size()) return absl::DataLossError("partial record at the end");
  for (const LogRecord& r : decoded.records) {
    (r.stream == OutputStream::kStdout ? out : err) += r.data;
  }
  return absl::OkStatus();
}

ShimResult RunShimToEnd(const ShimConfig& config) {
  ShimResult result;
  auto shim = StartShim(config);
  if (!shim.ok()) {
    result.exit = shim.status();
    return result;
  }
  result.shim = *shim;
  auto status = WaitShim(result.shim);
  if (!status.ok()) {
    result.exit = status.status();
    return result;
  }
  result.shim_status = *status;
  auto text = linux::ReadFile(absl::StrCat(config.bundle, "/", kExitFile));
  result.exit = text.ok() ? ParseExitRecord(*text) : absl::StatusOr<ExitRecord>(text.status());
  (void)ReadContainerLog(config.bundle, result.out, result.err);
  return result;
}

bool WaitForFileContaining(const std::string& path, const std::string& needle,
                           absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    auto text = linux::ReadFile(path);
    if (text.ok() && absl::StrContains(*text, needle)) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

void RemoveCgroupParent(const CgroupDriver& driver) {
  // RelativePath("x") is "/<parent>/x".
  std::string parent = driver.RelativePath("x");
  parent = parent.substr(0, parent.size() - 2);
  std::vector<std::string> roots;
  if (driver.Version() == "v2") {
    roots = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
  } else {
    auto mounts = ParseCgroupV1Mounts(*linux::ReadFile("/proc/self/mountinfo"), "/sys/fs/cgroup");
    if (mounts.ok()) {
      for (const auto& [controller, mount_point] : *mounts) roots.push_back(mount_point);
    }
  }
  for (const std::string& root : roots) {
    std::string dir = root + parent;
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
      fprintf(stderr, "rmdir %s: %s\n", dir.c_str(), strerror(errno));
    }
  }
}

std::vector<std::string> MountTable() {
  std::vector<std::string> out;
  auto text = linux::ReadFile("/proc/self/mountinfo");
  if (!text.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> head = absl::StrSplit(line.substr(0, line.find(" - ")), ' ');
    std::vector<absl::string_view> tail = absl::StrSplit(line.substr(line.find(" - ") + 3), ' ');
    if (head.size() < 5 || tail.size() < 2) continue;
    out.push_back(absl::StrCat(head[4], " ", tail[0], " ", tail[1]));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace nodeagent::runtime::testutil
