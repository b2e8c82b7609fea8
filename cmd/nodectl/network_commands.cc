// nodectl network create / ls / inspect / rm / connect / disconnect, and the plumbing the
// runtime uses (attach / detach: what AttachContainer and DetachContainer do for a container id).

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cmd/nodectl/commands.h"
#include "services/network/core/state.h"

namespace nodeagent::nodectl {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

struct CreateOptions {
  std::string name;
  std::string subnet;
  std::string gateway;
  int mtu = 0;
};

int Create(CliContext& ctx, const CreateOptions& options) {
  auto stub = ctx.Network();
  auto context = CliContext::Deadline();
  v1::CreateNetworkRequest request;
  request.set_name(options.name);
  request.set_subnet(options.subnet);
  request.set_gateway(options.gateway);
  request.set_mtu(options.mtu);
  v1::CreateNetworkResponse response;
  grpc::Status status = stub->CreateNetwork(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("network create ", options.name), status, "network");
    return kExitFailure;
  }
  std::cout << response.network().id() << "\n";
  return 0;
}

int List(CliContext& ctx, bool quiet) {
  auto stub = ctx.Network();
  auto context = CliContext::Deadline();
  v1::ListNetworksResponse response;
  grpc::Status status = stub->ListNetworks(context.get(), v1::ListNetworksRequest(), &response);
  if (!status.ok()) {
    PrintError("network ls", status, "network");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    std::cout << ToJson(response);
    return 0;
  }
  if (quiet) {
    for (const v1::Network& n : response.networks()) std::cout << n.name() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Network& n : response.networks()) {
    rows.push_back({ShortId(n.id()), n.name(), "bridge", n.subnet(), n.gateway(), n.bridge(),
                    absl::StrCat(n.endpoints_size())});
  }
  PrintTable({"NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS"}, rows);
  return 0;
}

int Inspect(CliContext& ctx, const std::vector<std::string>& names) {
  auto stub = ctx.Network();
  int rc = 0;
  std::vector<std::string> documents;
  for (const std::string& name : names) {
    auto context = CliContext::Deadline();
    v1::GetNetworkRequest request;
    request.set_name(name);
    v1::GetNetworkResponse response;
    grpc::Status status = stub->GetNetwork(context.get(), request, &response);
    if (!status.ok()) {
      PrintError(absl::StrCat("network inspect ", name), status, "network");
      rc = kExitFailure;
      continue;
    }
    documents.push_back(ToJson(response.network()));
  }
  std::cout << "[" << absl::StrJoin(documents, ",") << "]\n";
  return rc;
}

int Remove(CliContext& ctx, const std::vector<std::string>& names) {
  auto stub = ctx.Network();
  return ForEachName(names, "network rm", "network", [&](const std::string& name, std::string*) {
    auto context = CliContext::Deadline();
    v1::RemoveNetworkRequest request;
    request.set_name(name);
    v1::RemoveNetworkResponse response;
    return stub->RemoveNetwork(context.get(), request, &response);
  });
}

struct AttachOptions {
  std::string container_id;
  std::string name;
  std::string hostname;
  std::string network = "bridge";
  std::vector<std::string> publish;
  bool connect = false;
};

int Attach(CliContext& ctx, const AttachOptions& options) {
  v1::AttachContainerNetworkRequest request;
  request.set_container_id(options.container_id);
  request.set_container_name(options.name);
  request.set_hostname(options.hostname);
  request.mutable_attachment()->set_mode(options.network);
  request.set_connect(options.connect);
  for (const std::string& spec : options.publish) {
    absl::StatusOr<network::PortMapping> port = network::ParsePortSpec(spec);
    if (!port.ok()) {
      PrintError(absl::StrCat("network attach: ", port.status().message()));
      return kExitFailure;
    }
    v1::PortMapping* p = request.mutable_attachment()->add_ports();
    p->set_host_ip(port->host_ip);
    p->set_host_port(port->host_port);
    p->set_container_port(port->container_port);
    p->set_protocol(port->protocol);
  }
  auto stub = ctx.Network();
  {
    // Connect first, so elapsed_us is the attach alone (a caller such as the runtime keeps its
    // channel open) and not this process's connection setup.
    auto warm = CliContext::Deadline();
    v1::ListNetworksResponse ignored;
    (void)stub->ListNetworks(warm.get(), v1::ListNetworksRequest(), &ignored);
  }
  auto context = CliContext::Deadline();
  v1::AttachContainerNetworkResponse response;
  auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub->AttachContainer(context.get(), request, &response);
  auto elapsed = std::chrono::steady_clock::now() - start;
  if (!status.ok()) {
    PrintError(absl::StrCat("network attach ", options.container_id), status, "network");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    std::cout << ToJson(response);
    return 0;
  }
  std::cout << "netns_path: " << response.netns_path() << "\n"
            << "network: " << response.network() << "\n"
            << "ip_address: " << response.ip_address() << "/" << response.prefix_length() << "\n"
            << "gateway: " << response.gateway() << "\n"
            << "mac_address: " << response.mac_address() << "\n"
            << "host_veth: " << response.host_veth() << "\n"
            << "interface: " << response.interface_name() << "\n"
            << "hosts_path: " << response.hosts_path() << "\n"
            << "resolv_conf_path: " << response.resolv_conf_path() << "\n"
            << "elapsed_us: "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << "\n";
  return 0;
}

// The runtime's view of a container given by name, id or id prefix; prints the error.
std::optional<v1::Container> ResolveContainer(CliContext& ctx, const std::string& what,
                                              const std::string& ref) {
  auto stub = ctx.Runtime();
  auto context = CliContext::Deadline();
  v1::GetContainerRequest request;
  request.set_id(ref);
  v1::GetContainerResponse response;
  grpc::Status status = stub->GetContainer(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(what, status, "runtime");
    return std::nullopt;
  }
  return response.container();
}

// Networks of a container that shares a namespace it does not own (host, none, another
// container's) cannot change; said here in Docker's words before asking the network service.
bool SharesForeignNamespace(const v1::Container& c) {
  const std::string& mode = c.spec().network().mode();
  return mode == "host" || mode == "none" || absl::StartsWith(mode, "container:");
}

int Connect(CliContext& ctx, const std::string& network, const std::string& ref) {
  std::string what = absl::StrCat("network connect ", network, " ", ref);
  std::optional<v1::Container> c = ResolveContainer(ctx, what, ref);
  if (!c.has_value()) return kExitFailure;
  if (SharesForeignNamespace(*c)) {
    PrintError(absl::StrCat(what, ": container ", c->name(), " runs with --network ",
                            c->spec().network().mode(),
                            ": a container sharing the host's or another container's network "
                            "namespace (or none) cannot be connected to a network"));
    return kExitFailure;
  }
  if (c->state() != v1::CONTAINER_STATE_RUNNING && c->state() != v1::CONTAINER_STATE_PAUSED) {
    PrintError(absl::StrCat(what, ": container ", c->name(), " is not running"));
    return kExitFailure;
  }
  v1::AttachContainerNetworkRequest request;
  request.set_container_id(c->id());
  request.set_container_name(c->name());
  request.set_hostname(c->spec().hostname());
  request.mutable_attachment()->set_mode(network);
  request.set_connect(true);
  auto stub = ctx.Network();
  auto context = CliContext::Deadline();
  v1::AttachContainerNetworkResponse response;
  grpc::Status status = stub->AttachContainer(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(what, status, "network");
    return kExitFailure;
  }
  if (ctx.options().format == "json") std::cout << ToJson(response);
  return 0;
}

int Disconnect(CliContext& ctx, const std::string& network, const std::string& ref) {
  std::string what = absl::StrCat("network disconnect ", network, " ", ref);
  std::optional<v1::Container> c = ResolveContainer(ctx, what, ref);
  if (!c.has_value()) return kExitFailure;
  v1::DetachContainerNetworkRequest request;
  request.set_container_id(c->id());
  request.set_network(network);
  auto stub = ctx.Network();
  auto context = CliContext::Deadline();
  v1::DetachContainerNetworkResponse response;
  grpc::Status status = stub->DetachContainer(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(what, status, "network");
    return kExitFailure;
  }
  return 0;
}

int Detach(CliContext& ctx, const std::vector<std::string>& ids, const std::string& network) {
  auto stub = ctx.Network();
  return ForEachName(ids, "network detach", "network",
                     [&](const std::string& id, std::string* out) {
                       out->clear();  // Silent on success, as before.
                       auto context = CliContext::Deadline();
                       v1::DetachContainerNetworkRequest request;
                       request.set_container_id(id);
                       request.set_network(network);
                       v1::DetachContainerNetworkResponse response;
                       return stub->DetachContainer(context.get(), request, &response);
                     });
}

}  // namespace

void RegisterNetworkCommands(CLI::App& app, CliContext& context, int* exit_code) {
  CLI::App* network = app.add_subcommand("network", "Manage networks");
  network->require_subcommand(1);

  auto create_options = std::make_shared<CreateOptions>();
  CLI::App* create = network->add_subcommand("create", "Create a bridge network");
  create->add_option("name", create_options->name, "Network name")->required();
  create->add_option("--subnet", create_options->subnet,
                     "IPv4 subnet in CIDR form (default: a free /24 of the service's pool)");
  create->add_option("--gateway", create_options->gateway,
                     "Gateway address (default: the subnet's first host address)");
  create->add_option("--mtu", create_options->mtu,
                     "MTU of the bridge and the containers' interfaces (default: the "
                     "service's, 65000 unless node-networkd --default-mtu says otherwise)");
  create->callback(
      [&context, exit_code, create_options] { *exit_code = Create(context, *create_options); });

  auto quiet = std::make_shared<bool>(false);
  CLI::App* ls = network->add_subcommand("ls", "List networks");
  ls->alias("list");
  ls->add_flag("-q,--quiet", *quiet, "Only names");
  ls->callback([&context, exit_code, quiet] { *exit_code = List(context, *quiet); });

  auto names = std::make_shared<std::vector<std::string>>();
  CLI::App* inspect = network->add_subcommand("inspect", "Show networks as JSON");
  inspect->add_option("networks", *names, "Networks (name or id)")->required();
  inspect->callback([&context, exit_code, names] { *exit_code = Inspect(context, *names); });

  CLI::App* rm = network->add_subcommand("rm", "Remove networks (refused while in use)");
  rm->alias("remove");
  rm->add_option("networks", *names, "Networks (name or id)")->required();
  rm->callback([&context, exit_code, names] { *exit_code = Remove(context, *names); });

  auto attach_options = std::make_shared<AttachOptions>();
  CLI::App* attach = network->add_subcommand(
      "attach", "Plumbing: give a container id a namespace on a network (what the runtime does)");
  attach->add_option("container_id", attach_options->container_id, "Container id")->required();
  attach->add_option("--name", attach_options->name, "Container name");
  attach->add_option("--hostname", attach_options->hostname, "Container hostname");
  attach->add_option("--network", attach_options->network, "Network")->capture_default_str();
  attach->add_option("-p,--publish", attach_options->publish,
                     "Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]");
  attach->add_flag("--connect", attach_options->connect,
                   "Only add a network to a container that already has a namespace");
  attach->callback(
      [&context, exit_code, attach_options] { *exit_code = Attach(context, *attach_options); });

  auto pair = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* connect =
      network->add_subcommand("connect", "Connect a running container to one more network");
  connect->add_option("network", pair->first, "Network (name or id)")->required();
  connect->add_option("container", pair->second, "Container (name, id or id prefix)")->required();
  connect->callback(
      [&context, exit_code, pair] { *exit_code = Connect(context, pair->first, pair->second); });
  CLI::App* disconnect =
      network->add_subcommand("disconnect", "Disconnect a container from one network");
  disconnect->add_option("network", pair->first, "Network (name or id)")->required();
  disconnect->add_option("container", pair->second, "Container (name, id or id prefix)")
      ->required();
  disconnect->callback(
      [&context, exit_code, pair] { *exit_code = Disconnect(context, pair->first, pair->second); });

  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* detach =
      network->add_subcommand("detach", "Plumbing: undo `network attach` for container ids");
  auto detach_network = std::make_shared<std::string>();
  detach->add_option("container_ids", *ids, "Container ids")->required();
  detach->add_option("--network", *detach_network,
                     "Only this network's endpoint (default: every network, and the namespace)");
  detach->callback([&context, exit_code, ids, detach_network] {
    *exit_code = Detach(context, *ids, *detach_network);
  });
}

}  // namespace nodeagent::nodectl
