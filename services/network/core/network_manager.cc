#include "services/network/core/network_manager.h"

#include <time.h>

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/network/core/render.h"
#include "services/network/linux/netlink.h"
#include "services/network/linux/netns.h"
#include "services/network/linux/nftables.h"

namespace nodeagent::network {
namespace {

using linux::Netlink;
using nodeagent::linux::UniqueFd;

uint32_t Fnv1a(absl::string_view text) {
  uint32_t hash = 2166136261u;
  for (char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 16777619u;
  }
  return hash;
}

bool ValidName(absl::string_view name, size_t max) {
  if (name.empty() || name.size() > max || name == "." || name == "..") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return false;
  }
  return true;
}

std::string RandomHexId() {
  absl::BitGen gen;
  std::string id;
  for (int i = 0; i < 4; ++i)
    absl::StrAppend(&id, absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen)));
  return id;
}

// Two published ports clash when protocol and host port match and their host addresses
// overlap (an empty host address means every address).
bool PortsClash(const PortMapping& a, const PortMapping& b) {
  return a.protocol == b.protocol && a.host_port == b.host_port &&
         (a.host_ip.empty() || b.host_ip.empty() || a.host_ip == b.host_ip);
}

}  // namespace

KernelNames KernelNamesFor(const std::string& root) {
  KernelNames names;
  names.tag = absl::StrFormat("%04x", Fnv1a(root) & 0xffff);
  names.bridge_prefix = "nb" + names.tag;
  names.veth_prefix = "nv" + names.tag;
  names.nft_table = "nodeagent_" + names.tag;
  return names;
}

NetworkManager::NetworkManager(const ManagerOptions& options)
    : options_(options), names_(KernelNamesFor(options.root)) {}

NetworkManager::~NetworkManager() { StopSpareThread(); }

void NetworkManager::StopSpareThread() {
  {
    absl::MutexLock lock(&spare_mu_);
    stopping_ = true;
  }
  if (spare_thread_.joinable()) spare_thread_.join();
}

bool NetworkManager::SpareWanted() const { return stopping_ || spare_ == nullptr; }

void NetworkManager::SpareLoop() {
  absl::MutexLock lock(&spare_mu_);
  while (true) {
    spare_mu_.Await(absl::Condition(this, &NetworkManager::SpareWanted));
    if (stopping_) return;
    spare_mu_.Unlock();
    absl::StatusOr<linux::PreparedNetns> prepared = linux::PrepareNetns();
    spare_mu_.Lock();
    if (!prepared.ok()) {
      LogWarning("spare network namespace: %s", prepared.status().ToString());
      // Attaches make their own meanwhile; try again later.
      spare_mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(5));
      continue;
    }
    spare_ = std::make_unique<linux::PreparedNetns>(std::move(*prepared));
  }
}

absl::StatusOr<linux::PreparedNetns> NetworkManager::TakeSpareOrMake() {
  {
    absl::MutexLock lock(&spare_mu_);
    if (spare_ != nullptr) {
      linux::PreparedNetns spare = std::move(*spare_);
      spare_.reset();
      return spare;
    }
  }
  return linux::PrepareNetns();
}

absl::StatusOr<std::unique_ptr<NetworkManager>> NetworkManager::Open(
    const ManagerOptions& options) {
  NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(options.root + "/containers", 0711));
  std::unique_ptr<NetworkManager> manager(new NetworkManager(options));
  absl::MutexLock lock(&manager->mu_);
  if (nodeagent::linux::PathExists(manager->StatePath())) {
    NA_ASSIGN_OR_RETURN(std::string text, nodeagent::linux::ReadFile(manager->StatePath()));
    absl::StatusOr<NetworkState> state = ParseState(text);
    if (!state.ok()) return Annotate(state.status(), manager->StatePath());
    manager->state_ = std::move(*state);
  }
  NA_RETURN_IF_ERROR(Annotate(manager->ReconcileLocked(), "reconcile"));
  manager->spare_thread_ = std::thread([m = manager.get()] { m->SpareLoop(); });
  return manager;
}

absl::Status NetworkManager::SaveLocked(bool durable) {
  return linux::ReplaceFile(StatePath(), SerializeState(state_), durable);
}

absl::Status NetworkManager::Reconcile() {
  absl::MutexLock lock(&mu_);
  return ReconcileLocked();
}

absl::Status NetworkManager::ReconcileLocked() {
  // 1. Endpoints: an attach cut short, or one whose namespace is gone (a reboot, a pin
  //    removed by hand), is undone and its lease freed. Live ones get their links back if
  //    something removed them.
  std::vector<EndpointRecord> kept;
  for (EndpointRecord& e : state_.endpoints) {
    NetworkRecord* network = state_.FindNetwork(e.network);
    absl::StatusOr<UniqueFd> netns = linux::OpenPinnedNetns(NetnsPath(e.container_id));
    if (!e.complete || network == nullptr || !netns.ok()) {
      LogInfo("reconcile: dropping endpoint of container %s on %s (%s)", e.container_id, e.network,
              !e.complete ? "attach never finished"
                          : (network == nullptr ? "network gone" : "namespace gone"));
      if (absl::Status s = TearDownEndpoint(e.container_id, e.host_veth); !s.ok()) {
        LogWarning("reconcile: %s", s.ToString());
      }
      continue;
    }
    kept.push_back(std::move(e));
  }
  state_.endpoints = std::move(kept);

  // 2. Bridges of known networks exist, are up and carry their gateway; live endpoints have
  //    their veth. A failure here is logged, not fatal: the service still starts and serves
  //    everything else (and detaches can still clean up).
  for (const NetworkRecord& n : state_.networks) {
    if (absl::Status s = EnsureBridge(n); !s.ok()) LogWarning("reconcile: %s", s.ToString());
  }
  {
    NA_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
    for (const EndpointRecord& e : state_.endpoints) {
      if (nl.GetLink(e.host_veth).ok()) continue;
      LogInfo("reconcile: veth of container %s is missing; making it again", e.container_id);
      if (absl::Status s = SetUpEndpoint(*state_.FindNetwork(e.network), e); !s.ok()) {
        LogWarning("reconcile: container %s: %s", e.container_id, s.ToString());
      }
    }
  }

  // 3. Links with this node's prefixes that nothing in the state owns.
  {
    std::set<std::string> owned;
    for (const NetworkRecord& n : state_.networks) owned.insert(n.bridge);
    for (const EndpointRecord& e : state_.endpoints) owned.insert(e.host_veth);
    NA_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
    NA_ASSIGN_OR_RETURN(std::vector<linux::LinkInfo> links, nl.ListLinks());
    // veths first: a bridge goes only once nothing hangs on it.
    std::stable_partition(links.begin(), links.end(), [&](const linux::LinkInfo& l) {
      return absl::StartsWith(l.name, names_.veth_prefix);
    });
    for (const linux::LinkInfo& link : links) {
      bool ours = absl::StartsWith(link.name, names_.veth_prefix) ||
                  absl::StartsWith(link.name, names_.bridge_prefix);
      if (!ours || owned.count(link.name) > 0) continue;
      LogInfo("reconcile: deleting orphan link %s", link.name);
      absl::Status s = nl.DeleteLink(link.name);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
  }

  // 4. Pinned namespaces and per-container files nothing owns.
  std::set<std::string> ids;
  for (const EndpointRecord& e : state_.endpoints) ids.insert(e.container_id);
  if (nodeagent::linux::PathExists(NetnsDir())) {
    NA_ASSIGN_OR_RETURN(std::vector<std::string> pins, nodeagent::linux::ListDir(NetnsDir()));
    for (const std::string& pin : pins) {
      if (ids.count(pin) > 0) continue;
      LogInfo("reconcile: removing orphan netns %s", NetnsPath(pin));
      NA_RETURN_IF_ERROR(linux::RemovePinnedNetns(NetnsPath(pin)));
    }
  }
  NA_ASSIGN_OR_RETURN(std::vector<std::string> dirs,
                      nodeagent::linux::ListDir(options_.root + "/containers"));
  for (const std::string& dir : dirs) {
    if (ids.count(dir) > 0) continue;
    NA_RETURN_IF_ERROR(nodeagent::linux::RemoveTree(ContainerDir(dir)));
  }

  // 5. Rules are a function of the state: replace the table wholesale.
  NA_RETURN_IF_ERROR(ApplyRulesLocked());
  for (const NetworkRecord& n : state_.networks) {
    if (absl::Status s = RefreshHostsLocked(n.name); !s.ok()) {
      LogWarning("reconcile: %s", s.ToString());
    }
  }
  NA_RETURN_IF_ERROR(SaveLocked(/*durable=*/true));
  DropNetnsDirIfUnusedLocked();
  return absl::OkStatus();
}

void NetworkManager::Shutdown() {
  StopSpareThread();
  absl::MutexLock lock(&mu_);
  DropNetnsDirIfUnusedLocked();
}

void NetworkManager::DropNetnsDirIfUnusedLocked() {
  if (!state_.endpoints.empty()) return;
  netns_dir_ready_ = false;
  if (absl::Status s = linux::RemoveMountPoint(NetnsDir()); !s.ok()) {
    LogWarning("%s", s.ToString());
  }
}

absl::Status NetworkManager::EnsureBridge(const NetworkRecord& network) {
  std::string what =
      absl::StrCat("network \"", network.name, "\": bridge \"", network.bridge, "\"");
  NA_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
  absl::StatusOr<linux::LinkInfo> link = nl.GetLink(network.bridge);
  if (absl::IsNotFound(link.status())) {
    NA_RETURN_IF_ERROR(Annotate(nl.CreateBridge(network.bridge, network.mtu), what));
    link = nl.GetLink(network.bridge);
  }
  if (!link.ok()) return Annotate(link.status(), what);
  if (link->kind != "bridge") {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": a link of that name exists and is a \"", link->kind, "\""));
  }
  NA_RETURN_IF_ERROR(
      Annotate(nl.AddAddress(link->index, network.gateway.value, network.subnet.prefix), what));
  if (!link->up) NA_RETURN_IF_ERROR(Annotate(nl.SetUp(link->index), what));
  // Ports published on 127.0.0.1 are DNATed to the container with their loopback source;
  // the kernel routes such packets out of this bridge only with route_localnet on it.
  NA_RETURN_IF_ERROR(Annotate(
      linux::WriteNetSysctl(absl::StrCat("ipv4/conf/", network.bridge, "/route_localnet"), "1"),
      what));
  if (options_.enable_ip_forward) {
    absl::StatusOr<std::string> forward = linux::ReadNetSysctl("ipv4/ip_forward");
    if (forward.ok() && *forward != "1") {
      LogInfo("enabling net.ipv4.ip_forward for outbound NAT of container networks");
      NA_RETURN_IF_ERROR(linux::WriteNetSysctl("ipv4/ip_forward", "1"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NetworkRecord*> NetworkManager::CreateNetworkLocked(const std::string& name,
                                                                   const std::string& subnet,
                                                                   const std::string& gateway,
                                                                   int mtu) {
  std::string what = absl::StrCat("create network \"", name, "\"");
  if (!ValidName(name, 64) || name == "host" || name == "none" || absl::StrContains(name, ':')) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": bad name (letters, digits, '_', '.', '-'; not \"host\" or \"none\")"));
  }
  if (state_.FindNetwork(name) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat(what, ": a network of that name exists"));
  }
  if (mtu != 0 && (mtu < 68 || mtu > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": mtu ", mtu, " not in 68..65535"));
  }
  NA_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
  NA_ASSIGN_OR_RETURN(std::vector<linux::RouteInfo> routes, nl.ListRoutes());
  // What a subnet must not overlap: other networks and the host's routes (bar the default).
  auto clash = [&](const Subnet& s) -> std::string {
    for (const NetworkRecord& n : state_.networks) {
      if (n.subnet.Overlaps(s)) {
        return absl::StrCat("network \"", n.name, "\" (", n.subnet.ToString(), ")");
      }
    }
    for (const linux::RouteInfo& r : routes) {
      if (r.prefix == 0) continue;
      Subnet route{Ipv4{r.dst}, r.prefix};
      if (route.Overlaps(s)) return absl::StrCat("a route of the host (", route.ToString(), ")");
    }
    return "";
  };

  NetworkRecord record;
  record.name = name;
  if (subnet.empty()) {
    NA_ASSIGN_OR_RETURN(Subnet pool, Subnet::Parse(options_.address_pool));
    bool found = false;
    for (uint64_t v = pool.network.value; v <= pool.network.value + pool.Size() - 1;
         v += uint64_t{1} << (32 - options_.pool_prefix)) {
      Subnet candidate{Ipv4{static_cast<uint32_t>(v)}, options_.pool_prefix};
      if (clash(candidate).empty()) {
        record.subnet = candidate;
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::ResourceExhaustedError(absl::StrCat(what, ": every /", options_.pool_prefix,
                                                       " of the pool ", options_.address_pool,
                                                       " is taken; pass --subnet"));
    }
  } else {
    absl::StatusOr<Subnet> parsed = Subnet::Parse(subnet);
    if (!parsed.ok()) return Annotate(parsed.status(), what);
    if (parsed->prefix > 30) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": subnet \"", subnet, "\": too small (at most /30)"));
    }
    if (std::string other = clash(*parsed); !other.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": subnet ", parsed->ToString(), " overlaps ", other));
    }
    record.subnet = *parsed;
  }
  if (gateway.empty()) {
    record.gateway = record.subnet.FirstHost();
  } else {
    absl::StatusOr<Ipv4> gw = Ipv4::Parse(gateway);
    if (!gw.ok()) return Annotate(gw.status(), absl::StrCat(what, ": gateway"));
    if (!record.subnet.Contains(*gw) || *gw < record.subnet.FirstHost() ||
        record.subnet.LastHost() < *gw) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": gateway ", gateway, " is no host address of ", record.subnet.ToString()));
    }
    record.gateway = *gw;
  }
  record.id = RandomHexId();
  record.bridge = names_.bridge_prefix + record.id.substr(0, 6);
  record.created_unix = ::time(nullptr);
  record.last_allocated = record.gateway;
  record.mtu = mtu;

  NA_RETURN_IF_ERROR(EnsureBridge(record));
  state_.networks.push_back(record);
  absl::Status saved = SaveLocked(/*durable=*/true);
  absl::Status rules = saved.ok() ? ApplyRulesLocked() : saved;
  if (!rules.ok()) {
    state_.networks.pop_back();
    (void)nl.DeleteLink(record.bridge);
    (void)SaveLocked(/*durable=*/true);
    (void)ApplyRulesLocked();
    return Annotate(rules, what);
  }
  LogInfo("network %s: bridge %s, subnet %s, gateway %s", name, record.bridge,
          record.subnet.ToString(), record.gateway.ToString());
  return &state_.networks.back();
}

absl::StatusOr<NetworkInfo> NetworkManager::CreateNetwork(const std::string& name,
                                                          const std::string& subnet,
                                                          const std::string& gateway, int mtu) {
  absl::MutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(NetworkRecord * record, CreateNetworkLocked(name, subnet, gateway, mtu));
  return InfoLocked(*record);
}

NetworkInfo NetworkManager::InfoLocked(const NetworkRecord& network) {
  NetworkInfo info{network, {}};
  for (const EndpointRecord* e : state_.EndpointsOf(network.name)) info.endpoints.push_back(*e);
  return info;
}

std::vector<NetworkInfo> NetworkManager::ListNetworks() {
  absl::MutexLock lock(&mu_);
  std::vector<NetworkInfo> out;
  for (const NetworkRecord& n : state_.networks) out.push_back(InfoLocked(n));
  return out;
}

absl::StatusOr<NetworkInfo> NetworkManager::GetNetwork(const std::string& name) {
  absl::MutexLock lock(&mu_);
  NetworkRecord* record = state_.FindNetwork(name);
  if (record == nullptr) {
    return absl::NotFoundError(absl::StrCat("network \"", name, "\": not found"));
  }
  return InfoLocked(*record);
}

absl::Status NetworkManager::RemoveNetwork(const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::string what = absl::StrCat("remove network \"", name, "\"");
  NetworkRecord* record = state_.FindNetwork(name);
  if (record == nullptr) return absl::NotFoundError(absl::StrCat(what, ": not found"));
  std::vector<const EndpointRecord*> endpoints = state_.EndpointsOf(record->name);
  if (!endpoints.empty()) {
    std::vector<std::string> ids;
    for (const EndpointRecord* e : endpoints) {
      ids.push_back(e->container_name.empty() ? e->container_id : e->container_name);
    }
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", ids.size(), " container(s) attached: ", absl::StrJoin(ids, ", ")));
  }
  NetworkRecord removed = *record;
  state_.networks.erase(state_.networks.begin() + (record - state_.networks.data()));
  NA_RETURN_IF_ERROR(Annotate(SaveLocked(/*durable=*/true), what));
  NA_RETURN_IF_ERROR(Annotate(ApplyRulesLocked(), what));
  NA_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
  absl::Status s = nl.DeleteLink(removed.bridge);
  if (!s.ok() && !absl::IsNotFound(s)) return Annotate(s, what);
  LogInfo("network %s removed", removed.name);
  return absl::OkStatus();
}

absl::Status NetworkManager::ApplyRulesLocked() {
  if (nft_ == nullptr) {
    NA_ASSIGN_OR_RETURN(linux::Nftables nft, linux::Nftables::Open());
    nft_ = std::make_unique<linux::Nftables>(std::move(nft));
  }
  return nft_->Run(RenderRuleset(state_, names_.nft_table, names_.bridge_prefix));
}

absl::Status NetworkManager::SetUpEndpoint(const NetworkRecord& network,
                                           const EndpointRecord& endpoint) {
  std::string path = NetnsPath(endpoint.container_id);
  absl::StatusOr<UniqueFd> netns = linux::OpenPinnedNetns(path);
  std::optional<Netlink> inside;
  if (!netns.ok()) {
    if (!netns_dir_ready_) {
      NA_RETURN_IF_ERROR(linux::EnsurePrivateMountPoint(NetnsDir()));
      netns_dir_ready_ = true;
    }
    NA_RETURN_IF_ERROR(linux::RemovePinnedNetns(path));  // A stale file from a cut-short try.
    NA_ASSIGN_OR_RETURN(linux::PreparedNetns fresh, TakeSpareOrMake());
    NA_RETURN_IF_ERROR(linux::PinNetns(fresh.netns.get(), path));
    netns = std::move(fresh.netns);
    inside.emplace(std::move(fresh.netlink));
  }

  NA_ASSIGN_OR_RETURN(Netlink host, Netlink::Open());
  NA_ASSIGN_OR_RETURN(linux::LinkInfo bridge, host.GetLink(network.bridge));
  absl::Status stale = host.DeleteLink(endpoint.host_veth);
  if (!stale.ok() && !absl::IsNotFound(stale)) return stale;
  if (!inside.has_value()) {
    NA_ASSIGN_OR_RETURN(Netlink opened, Netlink::OpenIn(netns->get()));
    inside.emplace(std::move(opened));
  }
  // An eth0 left from an earlier try goes with its (now deleted) host end; anything else
  // named eth0 in a namespace of our own making would be a bug.
  linux::VethOptions veth;
  veth.host_name = endpoint.host_veth;
  veth.peer_name = "eth0";
  veth.peer_netns_fd = netns->get();
  veth.master_index = bridge.index;
  veth.peer_mac = endpoint.mac;
  veth.mtu = network.mtu;
  NA_RETURN_IF_ERROR(host.CreateVeth(veth));
  NA_ASSIGN_OR_RETURN(linux::LinkInfo eth0, inside->GetLink("eth0"));
  NA_RETURN_IF_ERROR(inside->AddAddress(eth0.index, endpoint.ip.value, network.subnet.prefix));
  NA_RETURN_IF_ERROR(inside->SetUp(eth0.index));
  NA_RETURN_IF_ERROR(inside->AddDefaultRoute(network.gateway.value, eth0.index));
  return absl::OkStatus();
}

absl::Status NetworkManager::TearDownEndpoint(const std::string& container_id,
                                              const std::string& host_veth) {
  absl::Status result;
  if (!host_veth.empty()) {
    absl::StatusOr<Netlink> nl = Netlink::Open();
    absl::Status s = nl.ok() ? nl->DeleteLink(host_veth) : nl.status();
    if (!s.ok() && !absl::IsNotFound(s)) result.Update(s);
  }
  result.Update(linux::RemovePinnedNetns(NetnsPath(container_id)));
  result.Update(nodeagent::linux::RemoveTree(ContainerDir(container_id)));
  return result;
}

absl::Status NetworkManager::WriteContainerFiles(const EndpointRecord& endpoint) {
  std::string dir = ContainerDir(endpoint.container_id);
  NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(dir, 0755));
  NA_RETURN_IF_ERROR(linux::RewriteFileInPlace(dir + "/hosts", RenderHosts(state_, endpoint)));
  std::string host_resolv;
  if (absl::StatusOr<std::string> text = nodeagent::linux::ReadFile(options_.host_resolv_conf);
      text.ok()) {
    host_resolv = std::move(*text);
  }
  return linux::RewriteFileInPlace(dir + "/resolv.conf", RenderResolvConf(host_resolv));
}

absl::Status NetworkManager::RefreshHostsLocked(const std::string& network) {
  for (const EndpointRecord& e : state_.endpoints) {
    if (e.network != network || !e.complete) continue;
    NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(ContainerDir(e.container_id), 0755));
    NA_RETURN_IF_ERROR(
        linux::RewriteFileInPlace(ContainerDir(e.container_id) + "/hosts", RenderHosts(state_, e)));
  }
  return absl::OkStatus();
}

AttachResult NetworkManager::ResultFor(const NetworkRecord& network,
                                       const EndpointRecord& endpoint) const {
  AttachResult r;
  r.netns_path = NetnsPath(endpoint.container_id);
  r.hosts_path = ContainerDir(endpoint.container_id) + "/hosts";
  r.resolv_conf_path = ContainerDir(endpoint.container_id) + "/resolv.conf";
  r.network = network.name;
  r.ip_address = endpoint.ip.ToString();
  r.prefix_length = network.subnet.prefix;
  r.gateway = network.gateway.ToString();
  r.mac_address = endpoint.mac;
  r.host_veth = endpoint.host_veth;
  return r;
}

absl::StatusOr<AttachResult> NetworkManager::Attach(const AttachRequest& request) {
  absl::MutexLock lock(&mu_);
  std::string what = absl::StrCat("attach container ", request.container_id);
  if (!ValidName(request.container_id, 128)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad container id (letters, digits, '_', '.', '-')"));
  }
  std::string network_name = request.network.empty() ? kDefaultNetwork : request.network;
  if (network_name == "host" || network_name == "none" ||
      absl::StartsWith(network_name, "container:")) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": network mode \"", network_name,
                                                   "\" needs no network service (the runtime ",
                                                   "handles it)"));
  }

  if (EndpointRecord* existing = state_.FindEndpoint(request.container_id)) {
    NetworkRecord* network = state_.FindNetwork(existing->network);
    if (existing->complete && network != nullptr && network->name == network_name &&
        linux::OpenPinnedNetns(NetnsPath(existing->container_id)).ok()) {
      return ResultFor(*network, *existing);
    }
    if (existing->complete && network != nullptr && network->name != network_name) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": already attached to network \"", existing->network, "\""));
    }
    // Half made: start again.
    std::string id = existing->container_id;
    bool had_ports = !existing->ports.empty();
    NA_RETURN_IF_ERROR(TearDownEndpoint(id, existing->host_veth));
    state_.endpoints.erase(state_.endpoints.begin() + (existing - state_.endpoints.data()));
    NA_RETURN_IF_ERROR(SaveLocked());
    if (had_ports) NA_RETURN_IF_ERROR(ApplyRulesLocked());
  }

  NetworkRecord* network = state_.FindNetwork(network_name);
  if (network == nullptr) {
    if (network_name != kDefaultNetwork) {
      return absl::NotFoundError(absl::StrCat(what, ": network \"", network_name, "\": not found"));
    }
    NA_ASSIGN_OR_RETURN(network, CreateNetworkLocked(kDefaultNetwork, "", "", 0));
  }

  for (const PortMapping& port : request.ports) {
    NA_RETURN_IF_ERROR(Annotate(ValidatePortMapping(port), what));
    for (const EndpointRecord& e : state_.endpoints) {
      for (const PortMapping& other : e.ports) {
        if (PortsClash(port, other)) {
          return absl::FailedPreconditionError(
              absl::StrCat(what, ": port ", PortMappingString(port), ": host port ", port.host_port,
                           "/", port.protocol, " is already published by ",
                           e.container_name.empty() ? e.container_id : e.container_name));
        }
      }
    }
  }
  for (size_t i = 0; i < request.ports.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (PortsClash(request.ports[i], request.ports[j])) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": host port ", request.ports[i].host_port, "/",
                         request.ports[i].protocol, " published twice"));
      }
    }
  }

  std::vector<Ipv4> in_use;
  for (const EndpointRecord* e : state_.EndpointsOf(network->name)) in_use.push_back(e->ip);
  absl::StatusOr<Ipv4> allocated = AllocateAddress(*network, in_use);
  if (!allocated.ok()) return Annotate(allocated.status(), what);
  Ipv4 ip = *allocated;

  EndpointRecord endpoint;
  endpoint.container_id = request.container_id;
  endpoint.container_name = request.container_name;
  endpoint.hostname = request.hostname;
  endpoint.network = network->name;
  endpoint.ip = ip;
  endpoint.mac = MacForIp(ip);
  endpoint.ports = request.ports;
  std::set<std::string> taken;
  for (const EndpointRecord& e : state_.endpoints) taken.insert(e.host_veth);
  for (uint32_t salt = 0;; ++salt) {
    std::string name = absl::StrFormat(
        "%s%08x", names_.veth_prefix,
        Fnv1a(salt == 0 ? request.container_id : absl::StrCat(request.container_id, salt)));
    if (taken.count(name) == 0) {
      endpoint.host_veth = name;
      break;
    }
  }
  endpoint.complete = false;

  // The lease is saved once everything is made. A crash before that leaves only kernel objects
  // named with this node's prefixes and pins nothing in the state owns: reconcile removes them.
  network->last_allocated = ip;
  state_.endpoints.push_back(endpoint);
  NetworkRecord network_copy = *network;
  auto rollback = absl::MakeCleanup([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (absl::Status s = TearDownEndpoint(endpoint.container_id, endpoint.host_veth); !s.ok()) {
      LogWarning("%s: roll back: %s", what, s.ToString());
    }
    state_.endpoints.erase(std::remove_if(state_.endpoints.begin(), state_.endpoints.end(),
                                          [&](const EndpointRecord& e) {
                                            return e.container_id == endpoint.container_id;
                                          }),
                           state_.endpoints.end());
    if (absl::Status s = SaveLocked(); !s.ok()) {
      LogWarning("%s: roll back: %s", what, s.ToString());
    }
    if (!endpoint.ports.empty()) {
      if (absl::Status s = ApplyRulesLocked(); !s.ok()) {
        LogWarning("%s: roll back: %s", what, s.ToString());
      }
    }
    DropNetnsDirIfUnusedLocked();
  });

  NA_RETURN_IF_ERROR(Annotate(SetUpEndpoint(network_copy, endpoint), what));
  NA_RETURN_IF_ERROR(Annotate(WriteContainerFiles(endpoint), what));
  if (!endpoint.ports.empty()) NA_RETURN_IF_ERROR(Annotate(ApplyRulesLocked(), what));
  state_.FindEndpoint(endpoint.container_id)->complete = true;
  NA_RETURN_IF_ERROR(Annotate(SaveLocked(), what));
  std::move(rollback).Cancel();

  if (absl::Status s = RefreshHostsLocked(network_copy.name); !s.ok()) {
    LogWarning("%s: refresh hosts files: %s", what, s.ToString());
  }
  LogInfo("container %s on %s: %s/%d via %s (%s)", endpoint.container_id, network_copy.name,
          ip.ToString(), network_copy.subnet.prefix, network_copy.gateway.ToString(),
          endpoint.host_veth);
  return ResultFor(network_copy, endpoint);
}

absl::Status NetworkManager::Detach(const std::string& container_id) {
  absl::MutexLock lock(&mu_);
  std::string what = absl::StrCat("detach container ", container_id);
  if (!ValidName(container_id, 128)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad container id"));
  }
  EndpointRecord* endpoint = state_.FindEndpoint(container_id);
  if (endpoint == nullptr) {
    // Nothing leased; still remove whatever a cut-short attach may have left.
    absl::Status s = TearDownEndpoint(container_id, "");
    DropNetnsDirIfUnusedLocked();
    return Annotate(s, what);
  }
  EndpointRecord removed = *endpoint;
  absl::Status torn = TearDownEndpoint(removed.container_id, removed.host_veth);
  state_.endpoints.erase(state_.endpoints.begin() + (endpoint - state_.endpoints.data()));
  NA_RETURN_IF_ERROR(Annotate(SaveLocked(), what));
  if (!removed.ports.empty()) NA_RETURN_IF_ERROR(Annotate(ApplyRulesLocked(), what));
  if (absl::Status s = RefreshHostsLocked(removed.network); !s.ok()) {
    LogWarning("%s: refresh hosts files: %s", what, s.ToString());
  }
  DropNetnsDirIfUnusedLocked();
  LogInfo("container %s left %s (%s freed)", container_id, removed.network, removed.ip.ToString());
  return Annotate(torn, what);
}

}  // namespace nodeagent::network
