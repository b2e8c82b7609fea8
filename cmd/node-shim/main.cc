// node-shim --bundle DIR: the per-container monitor (services/runtime/linux/shim_protocol.h).
// node-shim exec --bundle DIR --exec-id ID: one more process in that running container.
// node-shim warm --cgroup DIR...: a shim made ahead of its container (fd 4 the control pipe).
// Started by the runtime service with fd 3 the start pipe; kept small (no gRPC, no protobuf)
// because its start-up is part of every container's.

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "services/runtime/linux/exec_shim.h"
#include "services/runtime/linux/shim.h"
#include "services/runtime/linux/shim_protocol.h"

int main(int argc, char** argv) {
  CLI::App app{"node-shim: starts one container and keeps its output and exit status"};
  std::string bundle;
  app.add_option("--bundle", bundle, "the container's directory (absolute): config.json in it");
  CLI::App* exec =
      app.add_subcommand("exec", "run <bundle>/exec-<id>/process.json in the container");
  std::string exec_bundle, exec_id;
  exec->add_option("--bundle", exec_bundle, "the running container's directory")->required();
  exec->add_option("--exec-id", exec_id, "names the exec dir <bundle>/exec-<id>")->required();
  CLI::App* warm = app.add_subcommand(
      "warm", "wait, a child in these cgroups already, for a container (fd 4: \"go <bundle>\")");
  std::vector<std::string> warm_cgroups;
  warm->add_option("--cgroup", warm_cgroups, "a cgroup dir the child joins")->required();
  CLI11_PARSE(app, argc, argv);
  if (warm->parsed()) {
    return nodeagent::runtime::RunWarmShim(warm_cgroups, nodeagent::runtime::kShimStartPipeFd,
                                           nodeagent::runtime::kShimControlPipeFd);
  }
  if (exec->parsed()) {
    return nodeagent::runtime::RunExecShim(exec_bundle, exec_id,
                                           nodeagent::runtime::kShimStartPipeFd);
  }
  if (bundle.empty()) {
    std::fprintf(stderr, "node-shim: --bundle is required\n");
    return 2;
  }
  return nodeagent::runtime::RunShim(bundle, nodeagent::runtime::kShimStartPipeFd);
}
