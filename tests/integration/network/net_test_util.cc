#include "tests/integration/network/net_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace nodeagent::testing {

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int rc = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ > 0) Kill(SIGKILL);
}

int BackgroundProcess::Kill(int signal) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("bind 127.0.0.1:0 failed");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::vector<std::string> MountsBelow(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::vector<std::string> out;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && absl::StartsWith(f[4], dir)) out.push_back(f[4]);
  }
  return out;
}

std::string NftTable(const std::string& name) {
  CommandResult r = RunCommand({"nft", "list", "table", "ip", name});
  return r.exit_code == 0 ? r.out : "";
}

std::string HttpGetFromHost(const std::string& ip, int port, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const char request[] = "GET / HTTP/1.0\r\n\r\n";
      if (::send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) > 0) {
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
      }
    }
    ::close(fd);
    if (!response.empty()) return response;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

std::string HttpGetFromNetns(const std::string& netns, const std::string& host, int port,
                             std::chrono::milliseconds deadline, const std::string& hosts_file) {
  auto until = std::chrono::steady_clock::now() + deadline;
  std::string nc =
      absl::StrCat("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 ", host, " ", port);
  std::vector<std::string> argv = {"nsenter", "--net=" + netns};
  if (hosts_file.empty()) {
    argv.insert(argv.end(), {"sh", "-c", nc});
  } else {
    // A private mount namespace of its own: the bind never reaches the host.
    argv.insert(argv.end(), {"unshare", "-m", "--propagation", "private", "sh", "-c",
                             absl::StrCat("mount --bind '", hosts_file, "' /etc/hosts && ", nc)});
  }
  do {
    CommandResult r = RunCommand(argv);
    if (r.exit_code == 0 && !r.out.empty()) return r.out;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < until);
  return "";
}

std::vector<std::string> HttpdArgv(const std::string& netns, int port, const std::string& dir) {
  return {"nsenter", "--net=" + netns,     "busybox", "httpd", "-f",
          "-p",      std::to_string(port), "-h",      dir};
}

}  // namespace nodeagent::testing
