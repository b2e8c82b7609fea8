#pragma once

// The network service's logic: bridge networks, IPAM, a pinned network namespace and a veth
// pair per attached container, /etc/hosts and /etc/resolv.conf per container, published ports
// and masquerade through one nftables table of this node. State survives restarts and the
// kernel is reconciled against it when the manager opens.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/network/core/state.h"

namespace nodeagent::network {

class StepClock;

namespace linux {
class Nftables;
struct PreparedNetns;
}  // namespace linux

struct ManagerOptions {
  // State directory: the networks (state.json, fsynced).
  std::string root;
  // Run directory (a tmpfs such as /run in production): pinned namespaces at
  // <run_dir>/netns/<container id>; the containers' endpoints and leases, with the networks, at
  // <run_dir>/network/state.json; each container's hosts and resolv.conf at
  // <run_dir>/network/containers/<id>/ (as podman keeps them in its run root). All of it lives
  // exactly as long as the pinned namespaces it describes (a reboot ends both), and writing it
  // costs no disk I/O per attach.
  std::string run_dir;
  // Networks created without --subnet (the default one included) get the first free /24 of
  // this pool that overlaps no other network and no route of the host.
  std::string address_pool = "10.213.0.0/16";
  int pool_prefix = 24;
  // Outbound NAT needs the host to forward; turned on (as Docker does) when a network exists.
  bool enable_ip_forward = true;
  std::string host_resolv_conf = "/etc/resolv.conf";
  // MTU of networks created without one. Large, as loopback's (65536) is: traffic between
  // containers then costs what it costs over loopback; TCP to anything outside still uses the
  // peer's MSS, and the host (the first hop) tells a container the smaller path MTU itself.
  int default_mtu = 65000;
};

// The network the runtime names "bridge" (or leaves empty): created on first use.
inline constexpr char kDefaultNetwork[] = "bridge";

struct AttachRequest {
  std::string container_id;
  std::string container_name;
  std::string hostname;
  // "bridge" (or empty) for the default network, or a network name.
  std::string network;
  std::vector<PortMapping> ports;
  // Connect a running container to one more network: it must already have a namespace of this
  // service (FAILED_PRECONDITION otherwise); the new interface joins that namespace.
  bool connect = false;
};

struct AttachResult {
  std::string netns_path;
  std::string hosts_path;
  std::string resolv_conf_path;
  std::string network;
  std::string ip_address;
  int prefix_length = 0;
  std::string gateway;
  std::string mac_address;
  std::string host_veth;
  std::string interface_name;  // "eth0", "eth1", ... inside the container.
};

struct NetworkInfo {
  NetworkRecord network;
  std::vector<EndpointRecord> endpoints;
};

// Names of this node's kernel objects. Several nodes (a test's and the host's) can run side by
// side: each prefixes its bridges, veths and nftables table with a tag derived from its root.
struct KernelNames {
  std::string tag;            // 4 hex digits.
  std::string bridge_prefix;  // "nb" + tag
  std::string veth_prefix;    // "nv" + tag
  std::string nft_table;      // "nodeagent_" + tag
};
KernelNames KernelNamesFor(const std::string& root);

class NetworkManager {
 public:
  // Loads the state and reconciles the kernel with it (orphan links, namespaces, files and
  // rules go; networks' bridges are made again if missing; cut-short attaches are undone).
  static absl::StatusOr<std::unique_ptr<NetworkManager>> Open(const ManagerOptions& options);
  ~NetworkManager();

  // Empty subnet: a free /24 of the pool; empty gateway: the first host; mtu 0: the default.
  absl::StatusOr<NetworkInfo> CreateNetwork(const std::string& name, const std::string& subnet,
                                            const std::string& gateway, int mtu = 0);
  std::vector<NetworkInfo> ListNetworks();
  absl::StatusOr<NetworkInfo> GetNetwork(const std::string& name);
  // FAILED_PRECONDITION while containers are attached.
  absl::Status RemoveNetwork(const std::string& name);

  // Idempotent per container id and network: a second call returns the first one's result.
  // A container attached to another network gets one more interface (eth1, ...) in the same
  // namespace; its first network keeps the default route.
  absl::StatusOr<AttachResult> Attach(const AttachRequest& request);
  // With no network: removes everything Attach made for the container (every endpoint, the
  // namespace pin, the files); tolerant of partial state and of unknown ids. With a network
  // (name or id): removes only that endpoint, NOT_FOUND if there is none; the namespace stays.
  absl::Status Detach(const std::string& container_id, const std::string& network = "");

  // Runs the reconcile pass again (Open runs it once).
  absl::Status Reconcile();
  // On a clean stop: drops the netns mount point when no namespace is pinned below it.
  void Shutdown();

  const KernelNames& names() const { return names_; }
  std::string NetnsDir() const { return options_.run_dir + "/netns"; }

 private:
  explicit NetworkManager(const ManagerOptions& options);

  // Writes (write-temp-then-rename) the whole state to the run dir; with `durable`, also the
  // networks to the state dir, fsynced. Endpoints need no fsync: they live no longer than their
  // pinned namespaces, which a reboot removes anyway; the rename makes the write atomic, which
  // is all a crash of this process needs.
  absl::Status SaveLocked(bool durable = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReconcileLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<NetworkRecord*> CreateNetworkLocked(const std::string& name,
                                                     const std::string& subnet,
                                                     const std::string& gateway, int mtu)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EnsureBridge(const NetworkRecord& network);
  // Makes the namespace (if not pinned yet), the veth pair and the interface's address (and
  // the default route via the network's gateway when `default_route`).
  absl::Status SetUpEndpoint(const NetworkRecord& network, const EndpointRecord& endpoint,
                             bool default_route, StepClock* clock = nullptr);
  // Deletes a host veth (its peer goes with it); a missing one is not an error.
  absl::Status DeleteVeth(const std::string& host_veth);
  // Removes the container's namespace pin and files; every step runs even if one fails.
  absl::Status RemoveContainerFiles(const std::string& container_id);
  // Removes a container with every endpoint, lease, rule and file; saves the state.
  absl::Status ReleaseContainerLocked(const std::string& container_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyRulesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites (in place) the hosts files of every container on `network` but `except`.
  absl::Status RefreshHostsLocked(const std::string& network, const std::string& except = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteHostsFile(const std::string& container_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteContainerFiles(const std::string& container_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropNetnsDirIfUnusedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Making a network namespace is the slowest step of an attach: a background thread keeps one
  // made ahead of time (unpinned: it goes with the process if unused).
  void SpareLoop();
  bool SpareWanted() const ABSL_SHARED_LOCKS_REQUIRED(spare_mu_);
  absl::StatusOr<linux::PreparedNetns> TakeSpareOrMake();
  void StopSpareThread();
  // Deleting a veth waits for RCU grace periods in the kernel (~25 ms here), most of a detach:
  // a released endpoint's veth is deleted by this thread after the reply. Its address stays
  // out of use until then (AddressesInUseLocked), so it is never on two interfaces at once.
  // Stopping deletes what is still queued; a crash leaves veths that Reconcile removes.
  void ReapLoop();
  void StopReaper();
  std::vector<Ipv4> AddressesInUseLocked(const std::string& network)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  NetworkInfo InfoLocked(const NetworkRecord& network) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  AttachResult ResultFor(const NetworkRecord& network, const EndpointRecord& endpoint) const;

  std::string StatePath() const { return options_.root + "/state.json"; }
  std::string RunStatePath() const { return options_.run_dir + "/network/state.json"; }
  std::string ContainerDir(const std::string& id) const {
    return options_.run_dir + "/network/containers/" + id;
  }
  std::string NetnsPath(const std::string& id) const { return NetnsDir() + "/" + id; }

  const ManagerOptions options_;
  const KernelNames names_;
  absl::Mutex mu_;
  NetworkState state_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<linux::Nftables> nft_ ABSL_GUARDED_BY(mu_);
  // Whether <run_dir>/netns is known to be our private mount point.
  bool netns_dir_ready_ ABSL_GUARDED_BY(mu_) = false;

  struct ReapedVeth {
    std::string network;
    std::string host_veth;
    Ipv4 ip;
  };
  std::deque<ReapedVeth> reaping_ ABSL_GUARDED_BY(mu_);
  bool reaper_stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reaper_thread_;

  absl::Mutex spare_mu_;
  std::unique_ptr<linux::PreparedNetns> spare_ ABSL_GUARDED_BY(spare_mu_);
  bool stopping_ ABSL_GUARDED_BY(spare_mu_) = false;
  std::thread spare_thread_;
};

}  // namespace nodeagent::network
