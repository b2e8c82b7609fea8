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

// Wall time of each step of one operation, for the log ("netns 120us, veth 640us, ...").
class StepClock {
 public:
  void Mark(absl::string_view step) {
    absl::Time now = absl::Now();
    absl::StrAppend(&text_, text_.empty() ? "" : ", ", step, " ",
                    absl::ToInt64Microseconds(now - last_), "us");
    last_ = now;
  }
  std::string Total() const {
    return absl::StrCat(absl::ToInt64Microseconds(absl::Now() - start_), "us (", text_, ")");
  }

 private:
  absl::Time start_ = absl::Now();
  absl::Time last_ = start_;
  std::string text_;
};

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

NetworkManager::~NetworkManager() {
  StopSpareThread();
  StopReaper();
}

void NetworkManager::StopReaper() {
  {
    absl::MutexLock lock(&mu_);
    reaper_stopping_ = true;
  }
  if (reaper_thread_.joinable()) reaper_thread_.join();
}

void NetworkManager::ReapLoop() {
  absl::MutexLock lock(&mu_);
  auto work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return reaper_stopping_ || !reaping_.empty();
  };
  while (true) {
    mu_.Await(absl::Condition(&work));
    if (reaping_.empty()) return;  // Stopping, and all deleted.
    std::string veth = reaping_.front().host_veth;
    mu_.Unlock();
    absl::Status s = DeleteVeth(veth);
    mu_.Lock();
    if (!s.ok()) LogWarning("delete veth %s: %s", veth, s.ToString());
    reaping_.pop_front();  // Its address is free now.
  }
}

std::vector<Ipv4> NetworkManager::AddressesInUseLocked(const std::string& network) {
  std::vector<Ipv4> in_use;
  for (const EndpointRecord* e : state_.EndpointsOf(network)) in_use.push_back(e->ip);
  for (const ReapedVeth& r : reaping_) {
    if (r.network == network) in_use.push_back(r.ip);
  }
  return in_use;
}

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
  NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(options.root, 0711));
  NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(options.run_dir + "/network/containers", 0711));
  std::unique_ptr<NetworkManager> manager(new NetworkManager(options));
  absl::MutexLock lock(&manager->mu_);
  auto load = [](const std::string& path) -> absl::StatusOr<std::optional<NetworkState>> {
    if (!nodeagent::linux::PathExists(path)) return std::nullopt;
    NA_ASSIGN_OR_RETURN(std::string text, nodeagent::linux::ReadFile(path));
    absl::StatusOr<NetworkState> state = ParseState(text);
    if (!state.ok()) return Annotate(state.status(), path);
    return std::move(*state);
  };
  // The networks come from the state dir; containers, endpoints and where each network's
  // allocation stands from the run dir (a state written before the split has them all).
  NA_ASSIGN_OR_RETURN(std::optional<NetworkState> saved, load(manager->StatePath()));
  NA_ASSIGN_OR_RETURN(std::optional<NetworkState> run, load(manager->RunStatePath()));
  if (saved.has_value()) manager->state_ = std::move(*saved);
  if (run.has_value()) {
    manager->state_.containers = std::move(run->containers);
    manager->state_.endpoints = std::move(run->endpoints);
    for (NetworkRecord& n : manager->state_.networks) {
      for (const NetworkRecord& r : run->networks) {
        if (r.id == n.id) n.last_allocated = r.last_allocated;
      }
    }
  }
  NA_RETURN_IF_ERROR(Annotate(manager->ReconcileLocked(), "reconcile"));
  manager->spare_thread_ = std::thread([m = manager.get()] { m->SpareLoop(); });
  manager->reaper_thread_ = std::thread([m = manager.get()] { m->ReapLoop(); });
  return manager;
}

absl::Status NetworkManager::SaveLocked(bool durable) {
  if (durable) {
    NA_RETURN_IF_ERROR(linux::ReplaceFile(StatePath(), SerializeState(state_, false), true));
  }
  return linux::ReplaceFile(RunStatePath(), SerializeState(state_), false);
}

absl::Status NetworkManager::Reconcile() {
  absl::MutexLock lock(&mu_);
  return ReconcileLocked();
}

absl::Status NetworkManager::ReconcileLocked() {
  // 1. Containers whose namespace is gone (a reboot, a pin removed by hand) are released with
  //    every endpoint and lease they had. Endpoints of an attach cut short, or on a network
  //    that is gone, are undone. Live ones get their links back if something removed them.
  std::vector<ContainerRecord> kept_containers;
  for (ContainerRecord& c : state_.containers) {
    if (linux::OpenPinnedNetns(NetnsPath(c.container_id)).ok()) {
      kept_containers.push_back(std::move(c));
      continue;
    }
    LogInfo("reconcile: releasing container %s (namespace gone)", c.container_id);
    for (const EndpointRecord* e : state_.EndpointsOfContainer(c.container_id)) {
      if (absl::Status s = DeleteVeth(e->host_veth); !s.ok()) {
        LogWarning("reconcile: %s", s.ToString());
      }
    }
    if (absl::Status s = RemoveContainerFiles(c.container_id); !s.ok()) {
      LogWarning("reconcile: %s", s.ToString());
    }
  }
  state_.containers = std::move(kept_containers);
  std::vector<EndpointRecord> kept;
  for (EndpointRecord& e : state_.endpoints) {
    bool has_container = state_.FindContainer(e.container_id) != nullptr;
    bool has_network = state_.FindNetwork(e.network) != nullptr;
    if (!e.complete || !has_network || !has_container) {
      if (has_container) {
        LogInfo("reconcile: dropping endpoint of container %s on %s (%s)", e.container_id,
                e.network, !e.complete ? "attach never finished" : "network gone");
      }
      if (absl::Status s = DeleteVeth(e.host_veth); !s.ok()) {
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
      LogInfo("reconcile: veth of container %s on %s is missing; making it again", e.container_id,
              e.network);
      bool primary = state_.EndpointsOfContainer(e.container_id).front() == &e;
      if (absl::Status s = SetUpEndpoint(*state_.FindNetwork(e.network), e, primary); !s.ok()) {
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

  // 4. Pinned namespaces and per-container files no container owns.
  std::set<std::string> ids;
  for (const ContainerRecord& c : state_.containers) ids.insert(c.container_id);
  if (nodeagent::linux::PathExists(NetnsDir())) {
    NA_ASSIGN_OR_RETURN(std::vector<std::string> pins, nodeagent::linux::ListDir(NetnsDir()));
    for (const std::string& pin : pins) {
      if (ids.count(pin) > 0) continue;
      LogInfo("reconcile: removing orphan netns %s", NetnsPath(pin));
      NA_RETURN_IF_ERROR(linux::RemovePinnedNetns(NetnsPath(pin)));
    }
  }
  NA_ASSIGN_OR_RETURN(std::vector<std::string> dirs,
                      nodeagent::linux::ListDir(options_.run_dir + "/network/containers"));
  for (const std::string& dir : dirs) {
    if (ids.count(dir) > 0) continue;
    NA_RETURN_IF_ERROR(nodeagent::linux::RemoveTree(ContainerDir(dir)));
  }
  // Earlier versions kept the files under the state dir; they are written anew above.
  NA_RETURN_IF_ERROR(nodeagent::linux::RemoveTree(options_.root + "/containers"));

  // 5. Rules are a function of the state: replace the table wholesale.
  NA_RETURN_IF_ERROR(ApplyRulesLocked());
  for (const ContainerRecord& c : state_.containers) {
    if (absl::Status s = WriteHostsFile(c.container_id); !s.ok()) {
      LogWarning("reconcile: %s", s.ToString());
    }
  }
  NA_RETURN_IF_ERROR(SaveLocked(/*durable=*/true));
  DropNetnsDirIfUnusedLocked();
  return absl::OkStatus();
}

void NetworkManager::Shutdown() {
  StopSpareThread();
  StopReaper();
  absl::MutexLock lock(&mu_);
  DropNetnsDirIfUnusedLocked();
}

void NetworkManager::DropNetnsDirIfUnusedLocked() {
  if (!state_.containers.empty()) return;
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
  record.mtu = mtu != 0 ? mtu : options_.default_mtu;

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
  // The network's released veths go before its bridge (Await lets the reaper take mu_).
  auto reaped = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const ReapedVeth& r : reaping_) {
      if (r.network == name) return false;
    }
    return true;
  };
  mu_.Await(absl::Condition(&reaped));
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
                                           const EndpointRecord& endpoint, bool default_route,
                                           StepClock* clock) {
  StepClock unused;
  if (clock == nullptr) clock = &unused;
  std::string path = NetnsPath(endpoint.container_id);
  absl::StatusOr<UniqueFd> netns = linux::OpenPinnedNetns(path);
  std::optional<Netlink> inside;
  if (!netns.ok()) {
    if (!netns_dir_ready_) {
      NA_RETURN_IF_ERROR(linux::EnsurePrivateMountPoint(NetnsDir()));
      netns_dir_ready_ = true;
      clock->Mark("netns-dir");
    }
    NA_RETURN_IF_ERROR(linux::RemovePinnedNetns(path));  // A stale file from a cut-short try.
    NA_ASSIGN_OR_RETURN(linux::PreparedNetns fresh, TakeSpareOrMake());
    clock->Mark("netns");
    NA_RETURN_IF_ERROR(linux::PinNetns(fresh.netns.get(), path));
    clock->Mark("pin");
    netns = std::move(fresh.netns);
    inside.emplace(std::move(fresh.netlink));
  }

  NA_ASSIGN_OR_RETURN(Netlink host, Netlink::Open());
  NA_ASSIGN_OR_RETURN(linux::LinkInfo bridge, host.GetLink(network.bridge));
  // A host end left from an earlier try goes (its peer inside with it).
  NA_RETURN_IF_ERROR(DeleteVeth(endpoint.host_veth));
  if (!inside.has_value()) {
    NA_ASSIGN_OR_RETURN(Netlink opened, Netlink::OpenIn(netns->get()));
    inside.emplace(std::move(opened));
  }
  clock->Mark("lookups");
  linux::VethOptions veth;
  veth.host_name = endpoint.host_veth;
  veth.peer_name = endpoint.ifname;
  veth.peer_netns_fd = netns->get();
  veth.master_index = bridge.index;
  veth.peer_mac = endpoint.mac;
  veth.mtu = network.mtu;
  NA_RETURN_IF_ERROR(host.CreateVeth(veth));
  clock->Mark("veth");
  NA_ASSIGN_OR_RETURN(linux::LinkInfo peer, inside->GetLink(endpoint.ifname));
  clock->Mark("peer");
  NA_RETURN_IF_ERROR(inside->ConfigureInterface(peer.index, endpoint.ip.value,
                                                network.subnet.prefix,
                                                default_route ? network.gateway.value : 0));
  clock->Mark("addr+up+route");
  return absl::OkStatus();
}

absl::Status NetworkManager::DeleteVeth(const std::string& host_veth) {
  if (host_veth.empty()) return absl::OkStatus();
  NA_ASSIGN_OR_RETURN(Netlink nl, Netlink::Open());
  absl::Status s = nl.DeleteLink(host_veth);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  return absl::OkStatus();
}

absl::Status NetworkManager::RemoveContainerFiles(const std::string& container_id) {
  absl::Status result = linux::RemovePinnedNetns(NetnsPath(container_id));
  result.Update(nodeagent::linux::RemoveTree(ContainerDir(container_id)));
  return result;
}

absl::Status NetworkManager::WriteHostsFile(const std::string& container_id) {
  std::string dir = ContainerDir(container_id);
  NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(dir, 0755));
  return linux::RewriteFileInPlace(dir + "/hosts", RenderHosts(state_, container_id));
}

absl::Status NetworkManager::WriteContainerFiles(const std::string& container_id) {
  NA_RETURN_IF_ERROR(WriteHostsFile(container_id));
  std::string host_resolv;
  if (absl::StatusOr<std::string> text = nodeagent::linux::ReadFile(options_.host_resolv_conf);
      text.ok()) {
    host_resolv = std::move(*text);
  }
  return linux::RewriteFileInPlace(ContainerDir(container_id) + "/resolv.conf",
                                   RenderResolvConf(host_resolv));
}

absl::Status NetworkManager::RefreshHostsLocked(const std::string& network,
                                                const std::string& except) {
  std::set<std::string> done{except};
  absl::Status result;
  for (const EndpointRecord& e : state_.endpoints) {
    if (e.network != network || !e.complete || !done.insert(e.container_id).second) continue;
    result.Update(WriteHostsFile(e.container_id));
  }
  return result;
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
  r.interface_name = endpoint.ifname;
  return r;
}

absl::Status NetworkManager::ReleaseContainerLocked(const std::string& container_id) {
  absl::Status result;
  bool had_ports = false;
  std::set<std::string> networks;
  for (const EndpointRecord* e : state_.EndpointsOfContainer(container_id)) {
    if (reaper_stopping_) {
      result.Update(DeleteVeth(e->host_veth));
    } else if (!e->host_veth.empty()) {
      reaping_.push_back({e->network, e->host_veth, e->ip});
    }
    had_ports = had_ports || !e->ports.empty();
    networks.insert(e->network);
  }
  result.Update(RemoveContainerFiles(container_id));
  state_.endpoints.erase(
      std::remove_if(state_.endpoints.begin(), state_.endpoints.end(),
                     [&](const EndpointRecord& e) { return e.container_id == container_id; }),
      state_.endpoints.end());
  state_.containers.erase(
      std::remove_if(state_.containers.begin(), state_.containers.end(),
                     [&](const ContainerRecord& c) { return c.container_id == container_id; }),
      state_.containers.end());
  NA_RETURN_IF_ERROR(SaveLocked());
  if (had_ports) NA_RETURN_IF_ERROR(ApplyRulesLocked());
  for (const std::string& network : networks) {
    if (absl::Status s = RefreshHostsLocked(network); !s.ok()) {
      LogWarning("refresh hosts files of network %s: %s", network, s.ToString());
    }
  }
  return result;
}

absl::StatusOr<AttachResult> NetworkManager::Attach(const AttachRequest& request) {
  StepClock clock;
  absl::MutexLock lock(&mu_);
  clock.Mark("lock");
  std::string what =
      absl::StrCat(request.connect ? "connect" : "attach", " container ", request.container_id);
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

  // A container whose namespace is gone (a reboot) is released before anything else.
  ContainerRecord* container = state_.FindContainer(request.container_id);
  if (container != nullptr && !linux::OpenPinnedNetns(NetnsPath(request.container_id)).ok()) {
    NA_RETURN_IF_ERROR(Annotate(ReleaseContainerLocked(request.container_id), what));
    container = nullptr;
  }
  if (request.connect && container == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": the network service holds no network namespace for it (only a container ",
        "started on a bridge network can be connected to another one; --network host, none ",
        "and container:ID share a namespace this service does not own)"));
  }

  NetworkRecord* network = state_.FindNetwork(network_name);
  if (network == nullptr) {
    if (network_name != kDefaultNetwork) {
      return absl::NotFoundError(absl::StrCat(what, ": network \"", network_name, "\": not found"));
    }
    NA_ASSIGN_OR_RETURN(network, CreateNetworkLocked(kDefaultNetwork, "", "", 0));
  }

  if (EndpointRecord* existing = state_.FindEndpoint(request.container_id, network->name)) {
    if (existing->complete) return ResultFor(*network, *existing);  // Idempotent.
    // Half made: start again.
    bool had_ports = !existing->ports.empty();
    NA_RETURN_IF_ERROR(Annotate(DeleteVeth(existing->host_veth), what));
    state_.endpoints.erase(state_.endpoints.begin() + (existing - state_.endpoints.data()));
    NA_RETURN_IF_ERROR(SaveLocked());
    if (had_ports) NA_RETURN_IF_ERROR(ApplyRulesLocked());
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

  absl::StatusOr<Ipv4> allocated = AllocateAddress(*network, AddressesInUseLocked(network->name));
  if (!allocated.ok()) return Annotate(allocated.status(), what);
  Ipv4 ip = *allocated;

  bool new_container = container == nullptr;
  if (new_container) {
    state_.containers.push_back({request.container_id, request.container_name, request.hostname});
    container = &state_.containers.back();
  }
  EndpointRecord endpoint;
  endpoint.container_id = request.container_id;
  // A connect names the container as its first attach did, unless told otherwise.
  endpoint.container_name =
      request.container_name.empty() ? container->container_name : request.container_name;
  endpoint.hostname = request.hostname.empty() ? container->hostname : request.hostname;
  endpoint.network = network->name;
  endpoint.ip = ip;
  endpoint.mac = MacForIp(ip);
  endpoint.ports = request.ports;
  endpoint.ifname = NextInterfaceName(state_, request.container_id);
  bool primary = state_.EndpointsOfContainer(request.container_id).empty();
  std::set<std::string> taken;
  for (const EndpointRecord& e : state_.endpoints) taken.insert(e.host_veth);
  // A released veth still waiting to be deleted keeps its name: the reaper deletes by name.
  for (const ReapedVeth& r : reaping_) taken.insert(r.host_veth);
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
    absl::Status s = DeleteVeth(endpoint.host_veth);
    state_.endpoints.erase(std::remove_if(state_.endpoints.begin(), state_.endpoints.end(),
                                          [&](const EndpointRecord& e) {
                                            return e.container_id == endpoint.container_id &&
                                                   e.network == endpoint.network;
                                          }),
                           state_.endpoints.end());
    if (new_container) {
      s.Update(RemoveContainerFiles(endpoint.container_id));
      state_.containers.erase(std::remove_if(state_.containers.begin(), state_.containers.end(),
                                             [&](const ContainerRecord& c) {
                                               return c.container_id == endpoint.container_id;
                                             }),
                              state_.containers.end());
    }
    s.Update(SaveLocked());
    if (!endpoint.ports.empty()) s.Update(ApplyRulesLocked());
    if (!s.ok()) LogWarning("%s: roll back: %s", what, s.ToString());
  });

  clock.Mark("prepare");
  NA_RETURN_IF_ERROR(Annotate(SetUpEndpoint(network_copy, endpoint, primary, &clock), what));
  state_.FindEndpoint(endpoint.container_id, endpoint.network)->complete = true;
  if (new_container) {
    NA_RETURN_IF_ERROR(Annotate(WriteContainerFiles(endpoint.container_id), what));
  } else {
    NA_RETURN_IF_ERROR(Annotate(WriteHostsFile(endpoint.container_id), what));
  }
  clock.Mark("files");
  if (!endpoint.ports.empty()) {
    NA_RETURN_IF_ERROR(Annotate(ApplyRulesLocked(), what));
    clock.Mark("nft");
  }
  NA_RETURN_IF_ERROR(Annotate(SaveLocked(), what));
  clock.Mark("save");
  std::move(rollback).Cancel();

  if (absl::Status s = RefreshHostsLocked(network_copy.name, endpoint.container_id); !s.ok()) {
    LogWarning("%s: refresh hosts files: %s", what, s.ToString());
  }
  clock.Mark("hosts");
  LogInfo("container %s on %s: %s %s/%d via %s (%s) in %s", endpoint.container_id,
          network_copy.name, endpoint.ifname, ip.ToString(), network_copy.subnet.prefix,
          network_copy.gateway.ToString(), endpoint.host_veth, clock.Total());
  return ResultFor(network_copy, endpoint);
}

absl::Status NetworkManager::Detach(const std::string& container_id, const std::string& network) {
  absl::MutexLock lock(&mu_);
  std::string what = network.empty() ? absl::StrCat("detach container ", container_id)
                                     : absl::StrCat("disconnect container ", container_id,
                                                    " from network \"", network, "\"");
  if (!ValidName(container_id, 128)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad container id"));
  }
  if (network.empty()) {
    if (state_.FindContainer(container_id) == nullptr) {
      // Nothing leased; still remove whatever a cut-short attach may have left.
      return Annotate(RemoveContainerFiles(container_id), what);
    }
    std::vector<std::string> networks;
    for (const EndpointRecord* e : state_.EndpointsOfContainer(container_id)) {
      networks.push_back(e->network);
    }
    absl::Status s = ReleaseContainerLocked(container_id);
    LogInfo("container %s left %s", container_id,
            networks.empty() ? "no network" : absl::StrJoin(networks, ", "));
    return Annotate(s, what);
  }

  NetworkRecord* record = state_.FindNetwork(network);
  if (record == nullptr) return absl::NotFoundError(absl::StrCat(what, ": no such network"));
  EndpointRecord* endpoint = state_.FindEndpoint(container_id, record->name);
  if (endpoint == nullptr) {
    return absl::NotFoundError(absl::StrCat(what, ": the container is not connected to it"));
  }
  bool primary = state_.EndpointsOfContainer(container_id).front() == endpoint;
  EndpointRecord removed = *endpoint;
  absl::Status torn = DeleteVeth(removed.host_veth);
  state_.endpoints.erase(state_.endpoints.begin() + (endpoint - state_.endpoints.data()));
  NA_RETURN_IF_ERROR(Annotate(SaveLocked(), what));
  if (!removed.ports.empty()) NA_RETURN_IF_ERROR(Annotate(ApplyRulesLocked(), what));
  // The default route went with the interface that carried it: the next network's takes over.
  std::vector<const EndpointRecord*> left = state_.EndpointsOfContainer(container_id);
  if (primary && !left.empty()) {
    const NetworkRecord* next = state_.FindNetwork(left.front()->network);
    absl::Status routed = [&]() -> absl::Status {
      NA_ASSIGN_OR_RETURN(UniqueFd netns, linux::OpenPinnedNetns(NetnsPath(container_id)));
      NA_ASSIGN_OR_RETURN(Netlink inside, Netlink::OpenIn(netns.get()));
      NA_ASSIGN_OR_RETURN(linux::LinkInfo link, inside.GetLink(left.front()->ifname));
      return inside.AddDefaultRoute(next->gateway.value, link.index);
    }();
    if (!routed.ok()) LogWarning("%s: default route: %s", what, routed.ToString());
  }
  absl::Status hosts = WriteHostsFile(container_id);
  hosts.Update(RefreshHostsLocked(removed.network));
  if (!hosts.ok()) LogWarning("%s: refresh hosts files: %s", what, hosts.ToString());
  LogInfo("container %s left %s (%s, %s freed)", container_id, removed.network, removed.ifname,
          removed.ip.ToString());
  return Annotate(torn, what);
}

}  // namespace nodeagent::network
