#pragma once

// Helpers for the network integration tests: processes started inside a pinned network
// namespace (ended by their PID), free loopback ports, and independent views of the kernel
// (`ip`, `nft`) to check what the service made and what it left behind.

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/host_links.h"
#include "tests/support/subprocess.h"

namespace nodeagent::testing {

// A child process (posix_spawnp) killed with SIGKILL and reaped when this goes.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::vector<std::string>& argv,
                             const std::string& log_path = "/dev/null");
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `signal` and reaps the child; returns its wait status.
  int Kill(int signal);

 private:
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int FreeLoopbackPort();

// Mounts (mount points) below `dir` in this mount namespace.
std::vector<std::string> MountsBelow(const std::string& dir);

// `nft list table ip NAME`; empty when there is no such table.
std::string NftTable(const std::string& name);

// Sends an HTTP GET over TCP to ip:port from the host (this process) until a response arrives
// or `deadline` passes; returns what came back ("" on timeout).
std::string HttpGetFromHost(const std::string& ip, int port, std::chrono::milliseconds deadline);

// The same from inside the namespace pinned at `netns` (nsenter + busybox nc); `hosts_file`,
// when set, is bind-mounted on /etc/hosts in a private mount namespace first (as a container
// sees it) so `host` may be a name.
std::string HttpGetFromNetns(const std::string& netns, const std::string& host, int port,
                             std::chrono::milliseconds deadline,
                             const std::string& hosts_file = "");

// Starts busybox httpd serving `dir` on `port` inside the namespace pinned at `netns`.
std::vector<std::string> HttpdArgv(const std::string& netns, int port, const std::string& dir);

}  // namespace nodeagent::testing
