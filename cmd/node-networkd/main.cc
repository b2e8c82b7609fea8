// node-networkd: the network service (bridges, veth, IPAM, ports arrive with issue 5).

#include <CLI/CLI.hpp>
#include <string>

#include "services/common/grpc/service_host.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/network/grpc/network_service.h"

int main(int argc, char** argv) {
  nodeagent::BlockTerminationSignals();
  CLI::App app{"node-networkd: nodeagent network service"};
  std::string root = "/var/lib/nodeagent/network";
  std::string run_dir = "/run/nodeagent";
  std::string listen;
  app.add_option("--root", root, "State directory")->capture_default_str();
  app.add_option("--run-dir", run_dir, "Directory of the services' sockets")->capture_default_str();
  app.add_option("--listen", listen, "Also listen on this TCP address (e.g. 127.0.0.1:7702)");
  CLI11_PARSE(app, argc, argv);

  nodeagent::SetLogPrefix("node-networkd");
  if (absl::Status s = nodeagent::linux::MakeDirs(root, 0711); !s.ok()) {
    nodeagent::LogError("%s", s.ToString());
    return 1;
  }
  nodeagent::network::NetworkServiceImpl service;
  auto host = nodeagent::ServiceHost::Start({"network", run_dir, listen}, {&service});
  if (!host.ok()) {
    nodeagent::LogError("%s", host.status().ToString());
    return 1;
  }
  (*host)->RunUntilSignalled();
  return 0;
}
