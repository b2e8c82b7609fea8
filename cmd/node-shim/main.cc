// node-shim --bundle DIR: the per-container monitor (services/runtime/linux/shim_protocol.h).
// Started by the runtime service with fd 3 the start pipe; kept small (no gRPC, no protobuf)
// because its start-up is part of every container's.

#include <string>

#include "CLI/CLI.hpp"
#include "services/runtime/linux/shim.h"
#include "services/runtime/linux/shim_protocol.h"

int main(int argc, char** argv) {
  CLI::App app{"node-shim: starts one container and keeps its output and exit status"};
  std::string bundle;
  app.add_option("--bundle", bundle, "the container's directory (absolute): config.json in it")
      ->required();
  CLI11_PARSE(app, argc, argv);
  return nodeagent::runtime::RunShim(bundle, nodeagent::runtime::kShimStartPipeFd);
}
