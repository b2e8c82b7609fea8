// node-runtimed: the runtime service. Wires the cgroup driver, the image-service client and
// the container manager to a gRPC server; all logic lives in services/runtime.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/grpc/service_host.h"
#include "services/common/log.h"
#include "services/runtime/core/container_manager.h"
#include "services/runtime/grpc/image_client.h"
#include "services/runtime/grpc/network_client.h"
#include "services/runtime/grpc/runtime_service.h"
#include "services/runtime/linux/cgroup_driver.h"

namespace {

// node-shim is installed beside node-runtimed.
std::string DefaultShimPath() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "node-shim";
  std::string path(self, static_cast<size_t>(n));
  return absl::StrCat(path.substr(0, path.rfind('/')), "/node-shim");
}

}  // namespace

int main(int argc, char** argv) {
  nodeagent::BlockTerminationSignals();
  // Shims are our children only until they exit; the kernel reaps them, pidfds tell us when.
  ::signal(SIGCHLD, SIG_IGN);

  CLI::App app{"node-runtimed: nodeagent runtime service"};
  std::string root = "/var/lib/nodeagent/runtime";
  std::string run_dir = "/run/nodeagent";
  std::string listen;
  std::string image_socket;
  std::string network_socket;
  std::string shim_path = DefaultShimPath();
  std::string cgroup_parent = "nodeagent";
  bool debug = false;
  app.add_option("--root", root, "State directory")->capture_default_str();
  app.add_option("--run-dir", run_dir, "Directory of the services' sockets")->capture_default_str();
  app.add_option("--listen", listen, "Also listen on this TCP address (e.g. 127.0.0.1:7701)");
  app.add_option("--image-socket", image_socket,
                 "Image service socket (default <run-dir>/image.sock)");
  app.add_option("--network-socket", network_socket,
                 "Network service socket (default <run-dir>/network.sock)");
  app.add_option("--shim", shim_path, "Path of node-shim")->capture_default_str();
  app.add_option("--cgroup-parent", cgroup_parent, "cgroup below which containers' cgroups go")
      ->capture_default_str();
  int warm_shims = 1;
  app.add_option("--warm-shims", warm_shims,
                 "node-shims kept ready ahead of containers (cgroup v1: takes the cgroup "
                 "join's RCU grace period off each start); 0 for none")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  app.add_flag("--debug", debug, "Log debug messages");
  CLI11_PARSE(app, argc, argv);

  nodeagent::SetLogPrefix("node-runtimed");
  if (debug) nodeagent::SetLogLevel(nodeagent::LogLevel::kDebug);
  if (image_socket.empty()) image_socket = nodeagent::ServiceSocketPath(run_dir, "image");
  if (network_socket.empty()) network_socket = nodeagent::ServiceSocketPath(run_dir, "network");

  auto cgroups = nodeagent::runtime::DetectCgroupDriver("/sys/fs/cgroup", cgroup_parent);
  if (!cgroups.ok()) {
    nodeagent::LogError("cgroups: %s", cgroups.status().ToString());
    return 1;
  }
  nodeagent::LogInfo("cgroup driver %s, parent \"%s\"", (*cgroups)->Version(), cgroup_parent);
  nodeagent::runtime::ImageServiceSnapshots snapshots(image_socket);
  nodeagent::runtime::NetworkServiceAttacher networks(network_socket);
  nodeagent::runtime::ContainerManagerOptions options;
  options.root = root;
  options.shim_path = shim_path;
  options.warm_shims = warm_shims;
  auto manager =
      nodeagent::runtime::ContainerManager::Open(options, &snapshots, cgroups->get(), &networks);
  if (!manager.ok()) {
    nodeagent::LogError("open %s: %s", root, manager.status().ToString());
    return 1;
  }
  nodeagent::runtime::RuntimeServiceImpl service(manager->get());
  auto host = nodeagent::ServiceHost::Start({"runtime", run_dir, listen}, {&service});
  if (!host.ok()) {
    nodeagent::LogError("%s", host.status().ToString());
    return 1;
  }
  (*host)->RunUntilSignalled();
  return 0;
}
