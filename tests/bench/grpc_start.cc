// grpc_start: create + start + wait of a `true` container through the runtime's gRPC API,
// beside `crun run` and `runc run` of the same rootfs, interleaved round by round so machine
// drift hits all alike. The gRPC figure has no CLI in it (no process start, no library
// loading): it is what a client such as a kubelet or a CI runner pays per container.
//
// Usage (tests/bench/start_latency.sh runs it):
//   grpc_start SOCKET BUNDLE ROUNDS WARMUP [COLD_SOCKET]
// COLD_SOCKET: a second node with --warm-shims 0, measured in the same rounds.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "nodeagent/v1/runtime.grpc.pb.h"
#include "services/common/grpc/service_host.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = nodeagent::v1;

// Pause before each timed start (see the loop in main).
constexpr int kSettleMs = 50;

double Millis(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// One nodeagent round: create, start, wait (timed), then remove (not timed).
bool NodeagentRound(v1::RuntimeService::Stub& stub, double* ms) {
  auto t0 = Clock::now();
  v1::CreateContainerRequest create;
  create.mutable_spec()->set_image("busybox");
  create.mutable_spec()->add_args("/bin/true");
  create.mutable_spec()->mutable_network()->set_mode("none");
  v1::CreateContainerResponse created;
  grpc::ClientContext c1;
  grpc::Status s = stub.CreateContainer(&c1, create, &created);
  if (!s.ok()) return std::fprintf(stderr, "create: %s\n", s.error_message().c_str()), false;
  const std::string id = created.container().id();
  v1::StartContainerRequest start;
  start.set_id(id);
  v1::StartContainerResponse started;
  grpc::ClientContext c2;
  s = stub.StartContainer(&c2, start, &started);
  if (!s.ok()) return std::fprintf(stderr, "start: %s\n", s.error_message().c_str()), false;
  v1::WaitContainerRequest wait;
  wait.set_id(id);
  v1::WaitContainerResponse waited;
  grpc::ClientContext c3;
  s = stub.WaitContainer(&c3, wait, &waited);
  if (!s.ok()) return std::fprintf(stderr, "wait: %s\n", s.error_message().c_str()), false;
  *ms = Millis(Clock::now() - t0);
  v1::RemoveContainerRequest remove;
  remove.set_id(id);
  v1::RemoveContainerResponse removed;
  grpc::ClientContext c4;
  (void)stub.RemoveContainer(&c4, remove, &removed);
  return waited.exit().exit_code() == 0;
}

bool CommandRound(const std::vector<std::string>& argv, double* ms) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  auto t0 = Clock::now();
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  *ms = Millis(Clock::now() - t0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s RUNTIME_SOCKET BUNDLE ROUNDS WARMUP [COLD_RUNTIME_SOCKET]\n",
                 argv[0]);
    return 2;
  }
  const std::string bundle = argv[2];
  const int rounds = std::atoi(argv[3]);
  const int warmup = std::atoi(argv[4]);
  auto stub = v1::RuntimeService::NewStub(nodeagent::DialUnixSocket(argv[1]));
  // A second node started with --warm-shims 0, measured in the same rounds.
  std::unique_ptr<v1::RuntimeService::Stub> cold;
  if (argc == 6) cold = v1::RuntimeService::NewStub(nodeagent::DialUnixSocket(argv[5]));
  const std::string tag = std::to_string(getpid());

  std::map<std::string, std::vector<double>> times;
  for (int r = 0; r < warmup + rounds; ++r) {
    double na = 0, na_cold = 0, crun = 0, runc = 0;
    // Each start on a settled machine: work one runtime leaves behind (our warm node-shim's
    // refill, whose cgroup.procs write holds the kernel's cgroup_mutex for an RCU grace
    // period; a peer's deferred cleanup) must not land in the next one's figure.
    auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(kSettleMs)); };
    bool ok =
        (settle(), NodeagentRound(*stub, &na)) &&
        (settle(), CommandRound({"crun", "run", "-b", bundle, "gc" + tag + "-" + std::to_string(r)},
                                &crun)) &&
        (settle(), CommandRound({"runc", "run", "-b", bundle, "gr" + tag + "-" + std::to_string(r)},
                                &runc)) &&
        (cold == nullptr || (settle(), NodeagentRound(*cold, &na_cold)));
    if (!ok) {
      std::fprintf(stderr, "grpc_start: round %d failed\n", r);
      return 1;
    }
    if (r < warmup) continue;
    times["nodeagent"].push_back(na);
    times["crun"].push_back(crun);
    times["runc"].push_back(runc);
    times["ratio_crun"].push_back(na / crun);
    times["ratio_runc"].push_back(na / runc);
    if (cold != nullptr) {
      times["nodeagent_cold"].push_back(na_cold);
      times["ratio_cold_crun"].push_back(na_cold / crun);
    }
  }
  std::printf("nodeagent_grpc_create_start_wait median_ms=%.2f min_ms=%.2f n=%d\n",
              Median(times["nodeagent"]),
              *std::min_element(times["nodeagent"].begin(), times["nodeagent"].end()), rounds);
  std::printf("crun_run_true (same rounds)       median_ms=%.2f\n", Median(times["crun"]));
  std::printf("runc_run_true (same rounds)       median_ms=%.2f\n", Median(times["runc"]));
  std::printf("ratio_grpc/crun                   median=%.3f\n", Median(times["ratio_crun"]));
  std::printf("ratio_grpc/runc                   median=%.3f\n", Median(times["ratio_runc"]));
  if (cold != nullptr) {
    std::printf("nodeagent_cold_grpc (--warm-shims 0) median_ms=%.2f\n",
                Median(times["nodeagent_cold"]));
    std::printf("ratio_cold_grpc/crun              median=%.3f\n",
                Median(times["ratio_cold_crun"]));
  }
  return 0;
}
