// node-networkd: the network service (bridges, veth pairs, IPAM, port publishing, hosts files).

#include <CLI/CLI.hpp>
#include <string>

#include "services/common/grpc/service_host.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/network/core/network_manager.h"
#include "services/network/grpc/network_service.h"

int main(int argc, char** argv) {
  nodeagent::BlockTerminationSignals();
  CLI::App app{"node-networkd: nodeagent network service"};
  nodeagent::network::ManagerOptions options;
  options.root = "/var/lib/nodeagent/network";
  options.run_dir = "/run/nodeagent";
  std::string listen;
  app.add_option("--root", options.root, "State directory")->capture_default_str();
  app.add_option("--run-dir", options.run_dir, "Directory of the services' sockets")
      ->capture_default_str();
  app.add_option("--listen", listen, "Also listen on this TCP address (e.g. 127.0.0.1:7702)");
  app.add_option("--address-pool", options.address_pool,
                 "Subnets for networks created without --subnet are /24s of this pool")
      ->capture_default_str();
  app.add_option("--ip-forward", options.enable_ip_forward,
                 "Turn on net.ipv4.ip_forward when a network exists (outbound NAT needs it)")
      ->capture_default_str();
  app.add_option("--default-mtu", options.default_mtu,
                 "MTU of networks created without --mtu (1500 is Docker's choice)")
      ->check(CLI::Range(68, 65535))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  nodeagent::SetLogPrefix("node-networkd");
  if (absl::Status s = nodeagent::linux::MakeDirs(options.root, 0711); !s.ok()) {
    nodeagent::LogError("%s", s.ToString());
    return 1;
  }
  auto manager = nodeagent::network::NetworkManager::Open(options);
  if (!manager.ok()) {
    nodeagent::LogError("%s", manager.status().ToString());
    return 1;
  }
  nodeagent::network::NetworkServiceImpl service(manager->get());
  auto host = nodeagent::ServiceHost::Start({"network", options.run_dir, listen}, {&service});
  if (!host.ok()) {
    nodeagent::LogError("%s", host.status().ToString());
    return 1;
  }
  (*host)->RunUntilSignalled();
  (*manager)->Shutdown();
  return 0;
}
