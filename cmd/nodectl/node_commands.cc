// nodectl up / down / status: run the four services without systemd.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/nodectl/commands.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/common/linux/files.h"

extern char** environ;

namespace nodeagent::nodectl {
namespace {

struct ServiceInfo {
  const char* name;    // Socket and state name.
  const char* binary;  // Executable.
  bool has_root;       // Takes --root.
};

// In dependency order (the runtime calls image and network, metrics follows the runtime): `up`
// starts them in this order, `down` stops them in the reverse one.
constexpr ServiceInfo kServices[] = {
    {"image", "node-imaged", true},
    {"network", "node-networkd", true},
    {"runtime", "node-runtimed", true},
    {"metrics", "node-metricsd", false},
};

struct UpOptions {
  std::string root = "/var/lib/nodeagent";
  std::string log_dir = "/var/log/nodeagent";
  std::string bin_dir;
  std::string metrics_address = "127.0.0.1:9323";
  std::string cgroup_parent;
  int warm_shims = -1;  // -1: node-runtimed's default.
  int timeout_seconds = 20;
};

std::string SelfDir() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return ".";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::string PidFile(const CliContext& ctx, const ServiceInfo& s) {
  return absl::StrCat(ctx.options().run_dir, "/", s.name, ".pid");
}

// "SERVING", "NOT_SERVING", or why it could not be asked.
std::string HealthOf(const CliContext& ctx, const ServiceInfo& s, int timeout_ms = 1000) {
  auto channel = grpc::CreateChannel(absl::StrCat("unix:", ctx.SocketPath(s.name)),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return "unreachable";
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

int ReadPid(const std::string& path) {
  std::ifstream in(path);
  int pid = 0;
  in >> pid;
  return pid;
}

// The PID in the pid file, if it is still that service's process.
int LivePid(const CliContext& ctx, const ServiceInfo& s) {
  int pid = ReadPid(PidFile(ctx, s));
  if (pid <= 0) return 0;
  std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string argv0;
  std::getline(cmdline, argv0, '\0');
  return absl::EndsWith(argv0, s.binary) ? pid : 0;
}

std::string TailOfFile(const std::string& path, size_t max_bytes = 2000) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

absl::StatusOr<int> SpawnService(const CliContext& ctx, const UpOptions& up, const ServiceInfo& s,
                                 const std::string& log_path) {
  std::vector<std::string> args = {absl::StrCat(up.bin_dir, "/", s.binary), "--run-dir",
                                   ctx.options().run_dir};
  if (s.has_root) {
    args.push_back("--root");
    args.push_back(absl::StrCat(up.root, "/", s.name));
  }
  if (std::string(s.name) == "metrics") {
    args.push_back("--metrics-address");
    args.push_back(up.metrics_address);
  }
  if (std::string(s.name) == "runtime" && !up.cgroup_parent.empty()) {
    args.push_back("--cgroup-parent");
    args.push_back(up.cgroup_parent);
  }
  if (std::string(s.name) == "runtime" && up.warm_shims >= 0) {
    args.push_back("--warm-shims");
    args.push_back(absl::StrCat(up.warm_shims));
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: the services outlive this command and the terminal it ran in.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::ErrnoToStatus(rc, absl::StrCat("start ", argv[0]));
  }
  return pid;
}

int Up(CliContext& ctx, const UpOptions& options) {
  UpOptions up = options;
  if (up.bin_dir.empty()) up.bin_dir = SelfDir();
  for (const std::string& dir : {ctx.options().run_dir, up.log_dir}) {
    if (absl::Status made = linux::MakeDirs(dir, 0755); !made.ok()) {
      PrintError(std::string(made.message()));
      return kExitFailure;
    }
  }
  struct Started {
    const ServiceInfo* service;
    int pid;
    std::string log;
    bool already;
  };
  std::vector<Started> started;
  for (const ServiceInfo& s : kServices) {
    std::string log = absl::StrCat(up.log_dir, "/", s.name, ".log");
    if (int pid = LivePid(ctx, s); pid > 0 && HealthOf(ctx, s) == "SERVING") {
      started.push_back({&s, pid, log, true});
      continue;
    }
    auto pid = SpawnService(ctx, up, s, log);
    if (!pid.ok()) {
      PrintError(std::string(pid.status().message()));
      return kExitFailure;
    }
    std::ofstream(PidFile(ctx, s)) << *pid << "\n";
    started.push_back({&s, *pid, log, false});
  }
  // Wait for every service's health check, or for one of them to die.
  absl::Time deadline = absl::Now() + absl::Seconds(up.timeout_seconds);
  for (const Started& st : started) {
    while (HealthOf(ctx, *st.service, 500) != "SERVING") {
      if (::kill(st.pid, 0) != 0 || absl::Now() > deadline) {
        PrintError(absl::StrCat(st.service->binary, " did not become healthy",
                                ::kill(st.pid, 0) != 0 ? " (it exited)" : " in time",
                                "; the end of ", st.log, ":\n", TailOfFile(st.log)));
        return kExitFailure;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::vector<std::vector<std::string>> rows;
  for (const Started& st : started) {
    rows.push_back({st.service->name, st.already ? "already running" : "started",
                    std::to_string(st.pid), ctx.SocketPath(st.service->name), st.log});
  }
  PrintTable({"SERVICE", "STATE", "PID", "SOCKET", "LOG"}, rows);
  if (!up.metrics_address.empty()) {
    std::cout << "Prometheus metrics: http://" << up.metrics_address << "/metrics\n";
  }
  return 0;
}

int Down(CliContext& ctx, int timeout_seconds) {
  int rc = 0;
  // Reverse order: the runtime goes before the image service it calls.
  for (int i = static_cast<int>(std::size(kServices)) - 1; i >= 0; --i) {
    const ServiceInfo& s = kServices[i];
    int pid = LivePid(ctx, s);
    if (pid <= 0) {
      ::unlink(PidFile(ctx, s).c_str());
      std::cout << s.name << ": not running\n";
      continue;
    }
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    ::kill(pid, SIGTERM);
    struct pollfd pfd = {pidfd, POLLIN, 0};
    bool exited = pidfd >= 0 && ::poll(&pfd, 1, timeout_seconds * 1000) > 0;
    if (!exited) {
      ::kill(pid, SIGKILL);
      PrintError(absl::StrCat(s.binary, " (pid ", pid, ") ignored SIGTERM; killed"));
      rc = kExitFailure;
    }
    if (pidfd >= 0) ::close(pidfd);
    ::unlink(PidFile(ctx, s).c_str());
    std::cout << s.name << ": stopped\n";
  }
  return rc;
}

int Status(CliContext& ctx) {
  std::vector<std::vector<std::string>> rows;
  int rc = 0;
  for (const ServiceInfo& s : kServices) {
    std::string health = HealthOf(ctx, s);
    if (health != "SERVING") rc = kExitFailure;
    int pid = LivePid(ctx, s);
    rows.push_back({s.name, health, pid > 0 ? std::to_string(pid) : "-", ctx.SocketPath(s.name)});
  }
  PrintTable({"SERVICE", "HEALTH", "PID", "SOCKET"}, rows);
  return rc;
}

}  // namespace

void RegisterNodeCommands(CLI::App& app, CliContext& context, int* exit_code) {
  auto up_options = std::make_shared<UpOptions>();
  CLI::App* up = app.add_subcommand("up", "Start the four services in the background");
  up->add_option("--root", up_options->root, "Base of the services' state directories")
      ->capture_default_str();
  up->add_option("--log-dir", up_options->log_dir, "Where the services log")->capture_default_str();
  up->add_option("--bin-dir", up_options->bin_dir,
                 "Where the service binaries are (default: beside nodectl)");
  up->add_option("--metrics-address", up_options->metrics_address,
                 "HTTP address of Prometheus /metrics; empty disables it")
      ->capture_default_str();
  up->add_option("--cgroup-parent", up_options->cgroup_parent,
                 "cgroup below which containers' cgroups go (default nodeagent)");
  up->add_option("--warm-shims", up_options->warm_shims,
                 "node-shims the runtime keeps ready ahead of containers (default 1; 0: none)")
      ->check(CLI::Range(0, 16));
  up->add_option("--timeout", up_options->timeout_seconds, "Seconds to wait for health")
      ->capture_default_str();
  up->callback([&context, exit_code, up_options] { *exit_code = Up(context, *up_options); });

  auto down_timeout = std::make_shared<int>(10);
  CLI::App* down = app.add_subcommand("down", "Stop the services (containers keep running)");
  down->add_option("-t,--timeout", *down_timeout, "Seconds to wait before SIGKILL")
      ->capture_default_str();
  down->callback(
      [&context, exit_code, down_timeout] { *exit_code = Down(context, *down_timeout); });

  CLI::App* status = app.add_subcommand("status", "Show each service's health");
  status->callback([&context, exit_code] { *exit_code = Status(context); });
}

}  // namespace nodeagent::nodectl
