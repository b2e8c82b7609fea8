#pragma once

// ContainerManager owns the runtime's containers: their records under <root>/containers/<id>/,
// their rootfs snapshots (through SnapshotSource), cgroups (CgroupDriver) and node-shim
// monitors. It survives its own restart: records are re-read and running shims re-adopted.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/linux/files.h"
#include "services/runtime/core/container.h"
#include "services/runtime/core/event_hub.h"
#include "services/runtime/core/log_format.h"
#include "services/runtime/core/network_attacher.h"
#include "services/runtime/core/snapshot_source.h"
#include "services/runtime/linux/attach_session.h"
#include "services/runtime/linux/cgroup_driver.h"
#include "services/runtime/linux/dir_watch.h"
#include "services/runtime/linux/pidfd_monitor.h"
#include "services/runtime/linux/proc_info.h"
#include "services/runtime/linux/warm_shim_pool.h"

namespace nodeagent::runtime {

struct ContainerManagerOptions {
  std::string root = "/var/lib/nodeagent/runtime";
  std::string shim_path;
  absl::Duration start_timeout = absl::Seconds(30);
  // node-shims kept ready ahead of containers (warm_shim_pool.h); cgroup v1 only, where
  // they take the cgroup.procs grace period off the start. 0: none.
  int warm_shims = 0;
};

class ContainerManager {
 public:
  // Returns false to stop a stream early (the client went away).
  using RecordSink = std::function<bool(const LogRecord&)>;
  using CancelledFn = std::function<bool()>;

  static absl::StatusOr<std::unique_ptr<ContainerManager>> Open(
      const ContainerManagerOptions& options, SnapshotSource* snapshots, CgroupDriver* cgroups,
      NetworkAttacher* networks = nullptr);
  ~ContainerManager();

  absl::StatusOr<ContainerRecord> Create(const std::string& name, const ContainerConfig& config);
  absl::StatusOr<ContainerRecord> Start(const std::string& ref);
  std::vector<ContainerRecord> List(bool all);
  // `ref` is an id, a unique id prefix or a name.
  absl::StatusOr<ContainerRecord> Get(const std::string& ref);
  absl::Status Kill(const std::string& ref, int signal);
  absl::StatusOr<ExitRecord> Wait(const std::string& ref, const CancelledFn& cancelled);
  // Sends the stop signal (the container's, default SIGTERM), waits up to `timeout_seconds`
  // (negative: the container's stop timeout, default 10) and then SIGKILLs. Stopping a
  // stopped container succeeds.
  absl::Status Stop(const std::string& ref, int timeout_seconds);
  // Freezes / thaws the container's processes (cgroup freezer).
  absl::Status Pause(const std::string& ref);
  absl::Status Resume(const std::string& ref);

  // Host PID of a running container's first process; FAILED_PRECONDITION when not running.
  absl::StatusOr<int> LivePid(const std::string& ref);
  absl::StatusOr<std::vector<MountInfoEntry>> Mounts(const std::string& ref);
  // Starts one more process in a running container (node-shim exec) and connects to its
  // stdio. The exec's directory is removed when the returned session's owner calls
  // FinishExec. NOT_FOUND / PERMISSION_DENIED for a command that cannot be run.
  struct ExecSession {
    std::string dir;
    std::unique_ptr<AttachSession> attach;
  };
  absl::StatusOr<ExecSession> StartExec(const std::string& ref, const ShimExecProcess& process);
  void FinishExec(const ExecSession& session);
  // A live connection to a running container's stdio (its shim's attach socket).
  absl::StatusOr<std::unique_ptr<AttachSession>> Attach(const std::string& ref);

  struct VolumeInfo {
    std::string name;
    std::string path;
    int64_t size_bytes = 0;
    std::vector<std::string> used_by;
  };
  absl::StatusOr<VolumeInfo> CreateVolume(const std::string& name);
  absl::StatusOr<std::vector<VolumeInfo>> ListVolumes();
  absl::Status RemoveVolume(const std::string& name);
  absl::Status Remove(const std::string& ref, bool force);

  // A hold keeps an auto-remove container (and its log) in place after it exits, so a caller
  // streaming its output and exit status (the foreground `run`) never races the removal.
  // Release drops the hold and removes the container if it has exited meanwhile.
  absl::Status Hold(const std::string& id);
  // Lifecycle events from now on; with `include_existing`, first an "exists" event for each
  // container already known (subscribed before listing, so nothing falls in between).
  std::unique_ptr<EventHub::Subscription> Watch(bool include_existing);
  absl::Status Release(const std::string& id);

  // Sends the container's stored output (the last `tail` lines' records when tail > 0) to
  // `sink`; with `follow`, keeps sending until the container has exited and all is sent.
  absl::Status StreamOutput(const std::string& ref, bool follow, int tail, const RecordSink& sink,
                            const CancelledFn& cancelled);

 private:
  struct Entry {
    absl::Mutex op_mu;       // Serializes start/remove/exit handling of one container.
    ContainerRecord record;  // Guarded by ContainerManager::mu_.
    bool removed = false;    // Guarded by ContainerManager::mu_.
    int holds = 0;           // Guarded by ContainerManager::mu_.
  };

  ContainerManager(ContainerManagerOptions options, SnapshotSource* snapshots,
                   CgroupDriver* cgroups, NetworkAttacher* networks);
  absl::Status LoadAndReconcile();
  std::string BundleDir(const std::string& id) const;
  absl::StatusOr<std::shared_ptr<Entry>> Find(const std::string& ref);
  // State changes after create need only survive a crash of this service: a host crash ends
  // the containers too, and the reconcile on start corrects what the record says.
  absl::Status Persist(const ContainerRecord& record,
                       linux::Durability durability = linux::Durability::kServiceCrash);
  std::string UniqueName() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnShimExit(const std::string& id);
  // Records the exit of a running container and releases its cgroup. Caller holds op_mu.
  void FinishExit(const std::shared_ptr<Entry>& entry);
  // Removes everything the container owns. Caller holds op_mu; the container is not running.
  absl::Status RemoveResources(const std::shared_ptr<Entry>& entry);
  absl::Status WatchShim(const ContainerRecord& record);
  void Publish(absl::string_view type, const ContainerRecord& record);
  std::string VolumeDir(const std::string& name) const;
  // The namespaces node-shim makes or joins, from the network/ipc/pid modes and userns;
  // nullopt when all are the defaults (new pid, mnt, uts, ipc, net, cgroup).
  absl::StatusOr<std::optional<std::vector<ShimNamespace>>> ResolveNamespaces(
      const ContainerConfig& config, const std::optional<NetworkEndpoint>& endpoint);
  // Gets the container an endpoint on its bridge network (network modes "bridge" and names).
  absl::StatusOr<NetworkEndpoint> AttachNetwork(const ContainerRecord& record);
  // Records the networks `network connect` added to a container that just stopped, so that
  // its next start connects them again. Caller holds op_mu.
  void RememberConnectedNetworks(const std::shared_ptr<Entry>& entry);
  // Gives back the endpoint of a container that is not running, if it holds one; the record
  // keeps it until the network service confirms. Caller holds op_mu.
  absl::Status DetachNetwork(const std::shared_ptr<Entry>& entry);
  // Gives back the endpoints of exited containers whose detach failed (the network service
  // was down, or not up yet when this runtime started), with backoff, until closing.
  void RetryNetworkDetaches();
  // The mounts node-shim applies: named volumes become binds of their directories (created on
  // first use); bind sources must exist.
  absl::StatusOr<std::vector<MountSpec>> ResolveMounts(const std::vector<MountSpec>& mounts);

  const ContainerManagerOptions options_;
  SnapshotSource* const snapshots_;
  CgroupDriver* const cgroups_;
  NetworkAttacher* const networks_;  // Null: bridge networks are unavailable.
  std::unique_ptr<PidfdMonitor> monitor_;
  std::unique_ptr<WarmShimPool> warm_shims_;  // Null: every start is cold.
  std::unique_ptr<DirWatchHub> watches_;
  EventHub events_;

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> containers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> names_ ABSL_GUARDED_BY(mu_);  // name -> id
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread detach_retrier_;
  // --userns=private ranges picked by creates still in progress: id -> first host id.
  std::map<std::string, uint32_t> userns_reserved_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nodeagent::runtime
