#include "services/runtime/core/container_manager.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <deque>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/dir_watch.h"
#include "services/runtime/linux/exec_lookup.h"
#include "services/runtime/linux/process_handle.h"
#include "services/runtime/linux/shim_launcher.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {
namespace {

constexpr char kRecordFile[] = "container.json";
constexpr absl::Duration kWaitSlice = absl::Milliseconds(250);

int64_t NowNanos() { return absl::ToUnixNanos(absl::Now()); }

std::string RandomId() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  absl::MutexLock lock(&mu);
  std::string id;
  for (int i = 0; i < 4; ++i) {
    absl::StrAppendFormat(&id, "%016x", absl::Uniform<uint64_t>(*gen));
  }
  return id;
}

// A bind of a host path the caller named (-v /path:..., --mount type=bind): its source may be
// a mount made after a warm node-shim's child copied the host's mount table, which that copy
// need not show (mounts propagate into it only from shared ones). Such containers start cold;
// named volumes and the node's own files (hostname, hosts, resolv.conf) are plain directories
// and files of the node's state.
bool HasHostPathBind(const std::vector<MountSpec>& mounts) {
  for (const MountSpec& m : mounts) {
    if (m.type == "bind") return true;
  }
  return false;
}

ShimConfig MakeShimConfig(const ContainerRecord& r, const std::string& bundle,
                          const std::vector<MountSpec>& mounts,
                          std::optional<std::vector<ShimNamespace>> namespaces,
                          std::vector<std::string> cgroup_dirs) {
  ShimConfig shim;
  shim.id = r.id;
  shim.bundle = bundle;
  for (const MountSpec& m : r.rootfs_mounts) {
    shim.rootfs_mounts.push_back({m.type, m.source, m.destination, m.options});
  }
  for (const MountSpec& m : mounts) {
    shim.mounts.push_back({m.type, m.source, m.destination, m.options, m.source_mount_ns});
  }
  shim.readonly_rootfs = r.config.read_only_rootfs;
  shim.hostname = r.config.hostname;
  shim.args = r.process_args;
  shim.env = r.process_env;
  shim.cwd = r.process_cwd;
  shim.cgroup_dirs = std::move(cgroup_dirs);
  shim.namespaces = std::move(namespaces);
  const ContainerConfig& c = r.config;
  shim.tty = c.tty;
  shim.stdin_open = c.stdin_open;
  shim.init = c.init;
  shim.init_prompt = c.init_prompt;
  shim.user = c.user;
  shim.privileged = c.privileged;
  shim.cap_add = c.cap_add;
  shim.cap_drop = c.cap_drop;
  shim.seccomp = c.seccomp_profile;
  for (const IdMapping& m : c.userns.uid_mappings) {
    shim.uid_mappings.push_back({m.container_id, m.host_id, m.size});
  }
  for (const IdMapping& m : c.userns.gid_mappings) {
    shim.gid_mappings.push_back({m.container_id, m.host_id, m.size});
  }
  return shim;
}

// Running or paused: a process exists and a shim holds it.
bool IsLive(ContainerState state) {
  return state == ContainerState::kRunning || state == ContainerState::kPaused;
}

// One record per line ("a\nb" -> "a\n", "b"), each with the record's time and stream.
std::vector<LogRecord> SplitLines(LogRecord record) {
  std::vector<LogRecord> lines;
  size_t start = 0;
  while (start < record.data.size()) {
    size_t end = record.data.find('\n', start);
    end = end == std::string::npos ? record.data.size() : end + 1;
    lines.push_back({record.unix_nanos, record.stream, record.data.substr(start, end - start)});
    start = end;
  }
  return lines;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ContainerManager>> ContainerManager::Open(
    const ContainerManagerOptions& options, SnapshotSource* snapshots, CgroupDriver* cgroups,
    NetworkAttacher* networks) {
  if (options.shim_path.empty() || access(options.shim_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("node-shim not found or not executable at \"", options.shim_path, "\""));
  }
  NA_RETURN_IF_ERROR(linux::MakeDirs(absl::StrCat(options.root, "/containers"), 0711));
  auto manager = std::unique_ptr<ContainerManager>(
      new ContainerManager(options, snapshots, cgroups, networks));
  NA_ASSIGN_OR_RETURN(
      manager->monitor_,
      PidfdMonitor::Start([m = manager.get()](const std::string& id) { m->OnShimExit(id); }));
  NA_ASSIGN_OR_RETURN(manager->watches_, DirWatchHub::Start());
  NA_RETURN_IF_ERROR(manager->LoadAndReconcile());
  // After the reconcile, which removes the cgroups of a previous run's warm slots.
  if (options.warm_shims > 0 && cgroups->Version() == "v1") {
    WarmShimPoolOptions warm;
    warm.shim_path = options.shim_path;
    warm.size = options.warm_shims;
    manager->warm_shims_ = std::make_unique<WarmShimPool>(warm, cgroups);
  }
  if (networks != nullptr) {
    manager->detach_retrier_ = std::thread([m = manager.get()] { m->RetryNetworkDetaches(); });
  }
  return manager;
}

ContainerManager::ContainerManager(ContainerManagerOptions options, SnapshotSource* snapshots,
                                   CgroupDriver* cgroups, NetworkAttacher* networks)
    : options_(std::move(options)), snapshots_(snapshots), cgroups_(cgroups), networks_(networks) {}

ContainerManager::~ContainerManager() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  if (detach_retrier_.joinable()) detach_retrier_.join();
  warm_shims_.reset();
  // Stop exit callbacks before the maps they touch go away. Containers keep running.
  monitor_.reset();
  watches_.reset();
}

void ContainerManager::RetryNetworkDetaches() {
  absl::Duration delay = absl::Milliseconds(200);
  auto closing = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closing_; };
  for (;;) {
    std::vector<std::shared_ptr<Entry>> pending;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&closing), delay)) return;
      for (const auto& [id, entry] : containers_) {
        if (!IsLive(entry->record.state) && entry->record.network) pending.push_back(entry);
      }
    }
    delay = pending.empty() ? absl::Seconds(10) : std::min(delay * 2, absl::Seconds(10));
    for (const std::shared_ptr<Entry>& entry : pending) {
      absl::MutexLock op(&entry->op_mu);
      {
        absl::MutexLock lock(&mu_);
        if (entry->removed || IsLive(entry->record.state) || !entry->record.network) continue;
      }
      if (!DetachNetwork(entry).ok()) continue;  // Logged when it first failed.
      absl::MutexLock lock(&mu_);
      LogInfo("gave back the network endpoint of exited container %s",
              entry->record.id.substr(0, 12));
      if (absl::Status s = Persist(entry->record); !s.ok()) LogWarning("%s", s.ToString());
    }
  }
}

std::string ContainerManager::BundleDir(const std::string& id) const {
  return absl::StrCat(options_.root, "/containers/", id);
}

absl::Status ContainerManager::Persist(const ContainerRecord& record,
                                       linux::Durability durability) {
  return linux::WriteFileAtomic(absl::StrCat(BundleDir(record.id), "/", kRecordFile),
                                SerializeContainerRecord(record), 0600, durability);
}

absl::Status ContainerManager::LoadAndReconcile() {
  NA_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      linux::ListDir(absl::StrCat(options_.root, "/containers")));
  std::vector<std::shared_ptr<Entry>> running;
  for (const std::string& id : ids) {
    std::string bundle = BundleDir(id);
    auto text = linux::ReadFile(absl::StrCat(bundle, "/", kRecordFile));
    absl::StatusOr<ContainerRecord> record =
        text.ok() ? ParseContainerRecord(*text) : absl::StatusOr<ContainerRecord>(text.status());
    if (!record.ok()) {
      // A create that was interrupted before its record was written: undo it.
      LogWarning("removing interrupted container %s: %s", id, record.status().ToString());
      if (absl::Status s = cgroups_->Destroy(id); !s.ok()) LogWarning("%s", s.ToString());
      if (absl::Status s = snapshots_->Remove(id); !s.ok()) LogWarning("%s", s.ToString());
      if (absl::Status s = linux::RemoveTree(bundle); !s.ok()) LogWarning("%s", s.ToString());
      continue;
    }
    auto entry = std::make_shared<Entry>();
    entry->record = *std::move(record);
    {
      absl::MutexLock lock(&mu_);
      names_[entry->record.name] = id;
      containers_[id] = entry;
    }
    if (IsLive(entry->record.state)) {
      running.push_back(entry);
    }
    // One that exited holding an endpoint (while the runtime or the network service was down)
    // gets it given back by RetryNetworkDetaches.
  }

  // cgroups of containers that no longer exist or do not run (a start cut short between
  // making the cgroup and the shim's report; a warm slot's of a previous run).
  auto cgroup_ids = cgroups_->ListContainerIds();
  if (cgroup_ids.ok()) {
    for (const std::string& id : *cgroup_ids) {
      bool live;
      {
        absl::MutexLock lock(&mu_);
        auto it = containers_.find(id);
        live = it != containers_.end() && IsLive(it->second->record.state);
      }
      if (!live) {
        LogWarning("removing orphaned cgroup of %s", id);
        if (absl::Status s = cgroups_->Destroy(id); !s.ok()) LogWarning("%s", s.ToString());
      }
    }
  }

  for (const std::shared_ptr<Entry>& entry : running) {
    absl::MutexLock op(&entry->op_mu);
    ContainerRecord record;
    {
      absl::MutexLock lock(&mu_);
      record = entry->record;
    }
    absl::Status watched = WatchShim(record);
    if (watched.ok()) {
      LogInfo("re-adopted running container %s (shim %d)", record.id, record.shim_pid);
      continue;
    }
    FinishExit(entry);
    if (record.config.auto_remove) {
      if (absl::Status s = RemoveResources(entry); !s.ok()) LogWarning("%s", s.ToString());
    }
  }
  return absl::OkStatus();
}

absl::Status ContainerManager::WatchShim(const ContainerRecord& record) {
  // The PID must still be our shim, not a recycled number. (A warm node-shim's command line
  // does not name the bundle: records from before shim_start_ticks have only that check.)
  NA_ASSIGN_OR_RETURN(ProcessHandle shim, ProcessHandle::Open(record.shim_pid));
  const bool same = record.shim_start_ticks != 0
                        ? ProcessStartTicks(record.shim_pid) == record.shim_start_ticks
                        : absl::StrContains(ProcessCmdline(record.shim_pid), BundleDir(record.id));
  // An exited shim not yet reaped (a zombie whose new parent, init, reaps it later) is gone
  // too: the caller records the exit now.
  if (!same || shim.Exited()) {
    return absl::NotFoundError(absl::StrCat("shim of ", record.id, " is gone"));
  }
  return monitor_->Watch(record.id, std::move(shim));
}

std::string ContainerManager::UniqueName() {
  static constexpr const char* kAdjectives[] = {
      "brave", "calm",  "eager", "fancy", "gentle", "happy", "jolly", "keen",  "lucid", "merry",
      "nifty", "proud", "quiet", "rapid", "sharp",  "tidy",  "vivid", "witty", "zesty", "bold"};
  static constexpr const char* kNouns[] = {"bohr",    "curie",  "darwin",  "euler",    "fermi",
                                           "gauss",   "hopper", "knuth",   "lovelace", "maxwell",
                                           "noether", "pascal", "ritchie", "shannon",  "thompson",
                                           "turing",  "volta",  "wozniak", "yalow",    "zuse"};
  absl::BitGen gen;
  for (int attempt = 0;; ++attempt) {
    std::string name = absl::StrCat(kAdjectives[absl::Uniform(gen, 0u, 20u)], "_",
                                    kNouns[absl::Uniform(gen, 0u, 20u)]);
    if (attempt > 20) absl::StrAppend(&name, "_", absl::Uniform(gen, 0u, 100000u));
    if (names_.count(name) == 0) return name;
  }
}

absl::StatusOr<std::shared_ptr<ContainerManager::Entry>> ContainerManager::Find(
    const std::string& ref) {
  if (ref.empty()) return absl::InvalidArgumentError("no container given");
  absl::MutexLock lock(&mu_);
  if (auto it = containers_.find(ref); it != containers_.end()) return it->second;
  if (auto it = names_.find(ref); it != names_.end()) {
    if (auto c = containers_.find(it->second); c != containers_.end()) return c->second;
  }
  std::shared_ptr<Entry> match;
  for (auto it = containers_.lower_bound(ref);
       it != containers_.end() && absl::StartsWith(it->first, ref); ++it) {
    if (match != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("container id prefix \"", ref, "\" is ambiguous; give more characters"));
    }
    match = it->second;
  }
  if (match == nullptr) return absl::NotFoundError(absl::StrCat("no such container: ", ref));
  return match;
}

absl::StatusOr<ContainerRecord> ContainerManager::Create(const std::string& requested_name,
                                                         const ContainerConfig& config) {
  NA_RETURN_IF_ERROR(ValidateConfig(config));
  if (!requested_name.empty()) NA_RETURN_IF_ERROR(ValidateContainerName(requested_name));

  ContainerRecord record;
  record.config = config;
  record.created_unix_nanos = NowNanos();
  {
    absl::MutexLock lock(&mu_);
    if (!requested_name.empty() && names_.count(requested_name) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("container name \"", requested_name, "\" is already used by ",
                       names_[requested_name].substr(0, 12), "; remove it or pick another name"));
    }
    do {
      record.id = RandomId();
    } while (containers_.count(record.id) > 0);
    if (record.config.userns.mode == "private") {
      // A host id range no other container has (or is being created with), kept in the record.
      std::vector<IdMapping> used;
      for (const auto& [id, other] : containers_) {
        for (const auto* list : {&other->record.config.userns.uid_mappings,
                                 &other->record.config.userns.gid_mappings}) {
          used.insert(used.end(), list->begin(), list->end());
        }
      }
      for (const auto& [id, base] : userns_reserved_) used.push_back({0, base, kUserNamespaceSize});
      NA_ASSIGN_OR_RETURN(uint32_t base, PickUserNamespaceRange(used));
      userns_reserved_[record.id] = base;
      record.config.userns.uid_mappings = {{0, base, kUserNamespaceSize}};
      record.config.userns.gid_mappings = {{0, base, kUserNamespaceSize}};
    }
    record.name = requested_name.empty() ? UniqueName() : requested_name;
    names_[record.name] = record.id;  // Reserved until the container exists or creation fails.
  }
  const std::string bundle = BundleDir(record.id);
  bool created = false;
  bool snapshot_prepared = false;
  absl::Cleanup undo = [&] {
    if (created) return;
    if (snapshot_prepared) {
      if (absl::Status s = snapshots_->Remove(record.id); !s.ok()) LogWarning("%s", s.ToString());
    }
    if (absl::Status s = linux::RemoveTree(bundle); !s.ok()) LogWarning("%s", s.ToString());
    absl::MutexLock lock(&mu_);
    names_.erase(record.name);
    userns_reserved_.erase(record.id);
  };

  NA_RETURN_IF_ERROR(linux::MakeDirs(absl::StrCat(bundle, "/", kRootfsDir), 0700));
  NA_ASSIGN_OR_RETURN(PreparedRootfs rootfs,
                      snapshots_->Prepare(record.id, config.image, record.config.userns));
  snapshot_prepared = true;
  record.image_id = rootfs.image_id;
  record.rootfs_mounts = std::move(rootfs.mounts);
  if (record.config.hostname.empty()) record.config.hostname = record.id.substr(0, 12);
  NA_ASSIGN_OR_RETURN(ResolvedProcess process,
                      ResolveProcess(record.config, rootfs.image_defaults, record.config.hostname));
  record.process_args = std::move(process.args);
  record.process_env = std::move(process.env);
  record.process_cwd = std::move(process.cwd);
  record.cgroup_path = cgroups_->RelativePath(record.id);
  NA_RETURN_IF_ERROR(linux::WriteFileAtomic(absl::StrCat(bundle, "/", kHostnameFile),
                                            absl::StrCat(record.config.hostname, "\n"), 0644,
                                            linux::Durability::kServiceCrash));
  // A created container outlives a reboot of the host, as Docker's do; one that removes
  // itself (--rm) has nothing to outlive it for, and its start skips the fsync.
  NA_RETURN_IF_ERROR(Persist(record, record.config.auto_remove ? linux::Durability::kServiceCrash
                                                               : linux::Durability::kHostCrash));

  auto entry = std::make_shared<Entry>();
  entry->record = record;
  {
    absl::MutexLock lock(&mu_);
    containers_[record.id] = entry;
    userns_reserved_.erase(record.id);
  }
  created = true;
  LogInfo("created container %s (%s) from %s", record.id.substr(0, 12), record.name, config.image);
  Publish("create", record);
  return record;
}

absl::StatusOr<ContainerRecord> ContainerManager::Start(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  absl::MutexLock op(&entry->op_mu);
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    if (entry->removed) return absl::NotFoundError(absl::StrCat("no such container: ", ref));
    record = entry->record;
  }
  if (IsLive(record.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is already running"));
  }
  const std::string bundle = BundleDir(record.id);
  // A restart starts from a clean slate; the log keeps growing.
  ::unlink(absl::StrCat(bundle, "/", kExitFile).c_str());
  ::unlink(absl::StrCat(bundle, "/", kInitPidFile).c_str());

  auto fail = [&](const absl::Status& error) -> absl::Status {
    if (absl::Status s = cgroups_->Destroy(record.id); !s.ok()) LogWarning("%s", s.ToString());
    if (warm_shims_ != nullptr) warm_shims_->Resume();
    if (absl::Status s = DetachNetwork(entry); !s.ok()) LogWarning("%s", s.ToString());
    absl::MutexLock lock(&mu_);
    entry->record.start_error = std::string(error.message());
    entry->record.exit = ExitRecord{};
    entry->record.exit.exit_code = StartErrorExitCode(error);
    entry->record.exit.finished_unix_nanos = NowNanos();
    if (absl::Status s = Persist(entry->record); !s.ok()) LogWarning("%s", s.ToString());
    return Annotate(error, absl::StrCat("start container ", record.name));
  };

  auto mounts = ResolveMounts(record.config.mounts);
  if (!mounts.ok()) return fail(mounts.status());
  // Files the runtime binds over the image's unless the caller mounts its own there.
  auto bound_at = [&](absl::string_view path) {
    for (const MountSpec& m : *mounts) {
      if (m.destination == path) return true;
    }
    return false;
  };
  // POSIX shared memory lives in /dev/shm, not in the IPC namespace: sharing IPC shares it
  // too, as in Docker. Another container's /dev/shm is a mount of its mount namespace, which
  // the shim clones from inside that namespace.
  if (!bound_at("/dev/shm")) {
    absl::string_view owner = record.config.ipc_mode;
    if (record.config.ipc_mode == "host") {
      mounts->push_back({"bind", "/dev/shm", "/dev/shm", {}});
    } else if (absl::ConsumePrefix(&owner, "container:")) {
      auto pid = LivePid(std::string(owner));
      if (!pid.ok()) return fail(Annotate(pid.status(), "join the ipc namespace"));
      mounts->push_back(
          {"bind", "/dev/shm", "/dev/shm", {}, absl::StrCat("/proc/", *pid, "/ns/mnt")});
    }
  }
  if (!bound_at("/etc/hostname")) {
    mounts->push_back({"bind", absl::StrCat(bundle, "/", kHostnameFile), "/etc/hostname", {}});
  }
  if (UsesNetworkService(record.config.network_mode)) {
    auto endpoint = AttachNetwork(record);
    if (!endpoint.ok()) return fail(endpoint.status());
    {
      // Recorded before anything else can fail, so the endpoint is given back whatever happens.
      absl::MutexLock lock(&mu_);
      entry->record.network = *endpoint;
      record.network = *endpoint;
      if (absl::Status s = Persist(entry->record); !s.ok()) return fail(s);
    }
    // Networks connected before it stopped come back, after the first (which keeps eth0).
    for (const std::string& extra : record.extra_networks) {
      absl::StatusOr<NetworkEndpoint> connected =
          networks_->Attach({record.id, record.name, record.config.hostname, extra, {}});
      if (!connected.ok()) {
        return fail(
            Annotate(connected.status(), absl::StrCat("connect again to network \"", extra, "\"")));
      }
    }
    // The network service rewrites these files in place as containers come and go.
    if (!bound_at("/etc/hosts"))
      mounts->push_back({"bind", endpoint->hosts_path, "/etc/hosts", {}});
    if (!bound_at("/etc/resolv.conf")) {
      mounts->push_back({"bind", endpoint->resolv_conf_path, "/etc/resolv.conf", {}});
    }
  }
  auto namespaces = ResolveNamespaces(record.config, record.network);
  if (!namespaces.ok()) return fail(namespaces.status());
  ShimConfig shim_config = MakeShimConfig(record, bundle, *mounts, *namespaces, {});
  std::optional<WarmShim> warm;
  if (warm_shims_ != nullptr && WarmStartable(shim_config).ok() &&
      !HasHostPathBind(record.config.mounts)) {
    warm = warm_shims_->Take();
  }
  absl::StatusOr<std::vector<std::string>> cgroup_dirs = absl::InternalError("no cgroup yet");
  if (warm.has_value()) {
    cgroup_dirs = cgroups_->Adopt(warm->cgroup_id(), record.id, record.config.limits);
    if (!cgroup_dirs.ok()) {
      // Cold instead: a bad limit fails there again, with the same message.
      LogWarning("container %s: warm start: %s", record.id.substr(0, 12),
                 cgroup_dirs.status().ToString());
      warm.reset();
      if (absl::Status s = cgroups_->Destroy(record.id); !s.ok()) LogWarning("%s", s.ToString());
    }
  }
  if (!warm.has_value()) cgroup_dirs = cgroups_->Create(record.id, record.config.limits);
  if (!cgroup_dirs.ok()) return fail(cgroup_dirs.status());
  shim_config.cgroup_dirs = *cgroup_dirs;
  absl::Status written = linux::WriteFileAtomic(absl::StrCat(bundle, "/", kShimConfigFile),
                                                SerializeShimConfig(shim_config), 0600,
                                                linux::Durability::kServiceCrash);
  if (!written.ok()) return fail(written);
  auto launched = warm.has_value() ? warm->Launch(bundle, options_.start_timeout)
                                   : LaunchShim(options_.shim_path, bundle, options_.start_timeout);
  if (!launched.ok()) return fail(launched.status());
  const uint64_t shim_start_ticks = ProcessStartTicks(launched->shim_pid);

  {
    absl::MutexLock lock(&mu_);
    entry->record.state = ContainerState::kRunning;
    entry->record.pid = launched->container_pid;
    entry->record.shim_pid = launched->shim_pid;
    entry->record.shim_start_ticks = shim_start_ticks;
    entry->record.started_unix_nanos = NowNanos();
    entry->record.start_error.clear();
    entry->record.exit = ExitRecord{};
    record = entry->record;
  }
  if (absl::Status s = Persist(record); !s.ok()) LogWarning("%s", s.ToString());
  Publish("start", record);
  if (absl::Status watched = WatchShim(record); !watched.ok()) {
    // The shim is already gone: the container ran and exited in the meantime.
    FinishExit(entry);
    absl::MutexLock lock(&mu_);
    record = entry->record;
  }
  return record;
}

void ContainerManager::OnShimExit(const std::string& id) {
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return;
    entry = it->second;
  }
  absl::MutexLock op(&entry->op_mu);
  bool auto_remove;
  {
    absl::MutexLock lock(&mu_);
    if (entry->removed || !IsLive(entry->record.state)) return;
    auto_remove = entry->record.config.auto_remove && entry->holds == 0;
  }
  FinishExit(entry);
  if (auto_remove) {
    if (absl::Status s = RemoveResources(entry); !s.ok()) {
      LogWarning("auto-remove %s: %s", id.substr(0, 12), s.ToString());
    }
  }
}

void ContainerManager::FinishExit(const std::shared_ptr<Entry>& entry) {
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = entry->record.id;
  }
  ExitRecord exit;
  auto text = linux::ReadFile(absl::StrCat(BundleDir(id), "/", kExitFile));
  auto parsed = text.ok() ? ParseExitRecord(*text) : absl::StatusOr<ExitRecord>(text.status());
  std::string error;
  if (parsed.ok()) {
    exit = *parsed;
  } else {
    // The shim was killed before it could record the exit; the process is ended below.
    exit.exit_code = 255;
    exit.finished_unix_nanos = NowNanos();
    error = "node-shim ended without recording an exit status";
    LogWarning("container %s: %s (%s)", id.substr(0, 12), error, parsed.status().ToString());
  }
  // Also ends anything the container left behind if its shim was killed.
  if (absl::Status s = cgroups_->Destroy(id); !s.ok()) LogWarning("%s", s.ToString());
  if (warm_shims_ != nullptr) warm_shims_->Resume();
  RememberConnectedNetworks(entry);
  // Docker gives the address back at stop too; a restart gets a fresh endpoint.
  if (absl::Status s = DetachNetwork(entry); !s.ok()) LogWarning("%s", s.ToString());
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    entry->record.state = ContainerState::kExited;
    entry->record.exit = exit;
    entry->record.pid = 0;
    if (!error.empty()) entry->record.start_error = error;
    if (absl::Status s = Persist(entry->record); !s.ok()) LogWarning("%s", s.ToString());
    record = entry->record;
  }
  LogInfo("container %s exited with %d", id.substr(0, 12), exit.exit_code);
  Publish("exit", record);
}

absl::Status ContainerManager::RemoveResources(const std::shared_ptr<Entry>& entry) {
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    if (entry->removed) return absl::OkStatus();
    record = entry->record;
  }
  NA_RETURN_IF_ERROR(
      Annotate(cgroups_->Destroy(record.id), absl::StrCat("remove container ", record.name)));
  NA_RETURN_IF_ERROR(
      Annotate(DetachNetwork(entry), absl::StrCat("remove container ", record.name)));
  NA_RETURN_IF_ERROR(
      Annotate(snapshots_->Remove(record.id), absl::StrCat("remove container ", record.name)));
  NA_RETURN_IF_ERROR(Annotate(linux::RemoveTree(BundleDir(record.id)),
                              absl::StrCat("remove container ", record.name)));
  {
    absl::MutexLock lock(&mu_);
    entry->removed = true;
    containers_.erase(record.id);
    names_.erase(record.name);
  }
  LogInfo("removed container %s (%s)", record.id.substr(0, 12), record.name);
  Publish("remove", record);
  return absl::OkStatus();
}

void ContainerManager::Publish(absl::string_view type, const ContainerRecord& record) {
  events_.Publish({std::string(type), record, NowNanos()});
}

std::unique_ptr<EventHub::Subscription> ContainerManager::Watch(bool include_existing) {
  // Snapshot and subscribe under mu_. A change made under mu_ is published just after mu_ is
  // released, so a watcher may see an event repeat what its snapshot showed, but never misses one.
  absl::MutexLock lock(&mu_);
  std::vector<ContainerEvent> existing;
  if (include_existing) {
    for (const auto& [id, entry] : containers_) {
      existing.push_back({"exists", entry->record, NowNanos()});
    }
  }
  return events_.Subscribe(std::move(existing));
}

absl::Status ContainerManager::Hold(const std::string& id) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(id));
  absl::MutexLock lock(&mu_);
  if (entry->removed) return absl::NotFoundError(absl::StrCat("no such container: ", id));
  ++entry->holds;
  return absl::OkStatus();
}

absl::Status ContainerManager::Release(const std::string& id) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(id));
  absl::MutexLock op(&entry->op_mu);
  bool remove_now;
  {
    absl::MutexLock lock(&mu_);
    if (entry->holds > 0) --entry->holds;
    bool ended =
        entry->record.state == ContainerState::kExited ||
        (entry->record.state == ContainerState::kCreated && !entry->record.start_error.empty());
    remove_now = !entry->removed && entry->holds == 0 && entry->record.config.auto_remove && ended;
  }
  return remove_now ? RemoveResources(entry) : absl::OkStatus();
}

std::vector<ContainerRecord> ContainerManager::List(bool all) {
  std::vector<ContainerRecord> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : containers_) {
    if (!all && entry->record.state != ContainerState::kRunning &&
        entry->record.state != ContainerState::kPaused) {
      continue;
    }
    out.push_back(entry->record);
  }
  return out;
}

absl::StatusOr<ContainerRecord> ContainerManager::Get(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  absl::MutexLock lock(&mu_);
  return entry->record;
}

absl::Status ContainerManager::Kill(const std::string& ref, int signal) {
  if (signal < 1 || signal > 64) {
    return absl::InvalidArgumentError(absl::StrCat("invalid signal ", signal));
  }
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    record = entry->record;
  }
  if (!IsLive(record.state) || record.pid <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is not running"));
  }
  auto process = ProcessHandle::Open(record.pid);
  if (!process.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is not running"));
  }
  NA_RETURN_IF_ERROR(
      Annotate(process->Signal(signal), absl::StrCat("kill container ", record.name)));
  if (record.state == ContainerState::kPaused && signal == SIGKILL) {
    // Frozen tasks act on SIGKILL only once thawed.
    NA_RETURN_IF_ERROR(cgroups_->Thaw(record.id));
  }
  return absl::OkStatus();
}

absl::Status ContainerManager::Stop(const std::string& ref, int timeout_seconds) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    record = entry->record;
  }
  if (!IsLive(record.state)) return absl::OkStatus();  // Already stopped, as Docker's stop.
  if (timeout_seconds < 0) {
    timeout_seconds =
        record.config.stop_timeout_seconds > 0 ? record.config.stop_timeout_seconds : 10;
  }
  if (record.state == ContainerState::kPaused) {
    // A frozen process cannot handle the stop signal; thaw it first, as Docker does.
    NA_RETURN_IF_ERROR(Resume(record.id));
  }
  int stop_signal = record.config.stop_signal > 0 ? record.config.stop_signal : SIGTERM;
  absl::Status signalled = Kill(record.id, stop_signal);
  if (!signalled.ok() && !absl::IsFailedPrecondition(signalled)) return signalled;
  absl::Time deadline = absl::Now() + absl::Seconds(timeout_seconds);
  auto exited = Wait(record.id, [deadline] { return absl::Now() > deadline; });
  if (exited.ok() || absl::IsNotFound(exited.status())) return absl::OkStatus();
  if (!absl::IsCancelled(exited.status())) return exited.status();
  LogInfo("container %s ignored signal %d for %ds; killing it", record.id.substr(0, 12),
          stop_signal, timeout_seconds);
  signalled = Kill(record.id, SIGKILL);
  if (!signalled.ok() && !absl::IsFailedPrecondition(signalled)) return signalled;
  absl::Time kill_deadline = absl::Now() + absl::Seconds(10);
  exited = Wait(record.id, [kill_deadline] { return absl::Now() > kill_deadline; });
  if (exited.ok() || absl::IsNotFound(exited.status())) return absl::OkStatus();
  return absl::DeadlineExceededError(
      absl::StrCat("container ", record.name, " did not exit after SIGKILL"));
}

absl::Status ContainerManager::Pause(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  absl::MutexLock op(&entry->op_mu);
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    record = entry->record;
  }
  if (record.state == ContainerState::kPaused) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is already paused"));
  }
  if (record.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is not running"));
  }
  NA_RETURN_IF_ERROR(Annotate(cgroups_->Freeze(record.id), absl::StrCat("pause ", record.name)));
  {
    absl::MutexLock lock(&mu_);
    entry->record.state = ContainerState::kPaused;
    record = entry->record;
  }
  if (absl::Status s = Persist(record); !s.ok()) LogWarning("%s", s.ToString());
  Publish("pause", record);
  return absl::OkStatus();
}

absl::Status ContainerManager::Resume(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  absl::MutexLock op(&entry->op_mu);
  ContainerRecord record;
  {
    absl::MutexLock lock(&mu_);
    record = entry->record;
  }
  if (record.state != ContainerState::kPaused) {
    return absl::FailedPreconditionError(absl::StrCat("container ", record.name, " is not paused"));
  }
  NA_RETURN_IF_ERROR(Annotate(cgroups_->Thaw(record.id), absl::StrCat("unpause ", record.name)));
  {
    absl::MutexLock lock(&mu_);
    // The exit monitor may have seen it die meanwhile; only a still-paused one runs again.
    if (entry->record.state == ContainerState::kPaused)
      entry->record.state = ContainerState::kRunning;
    record = entry->record;
  }
  if (absl::Status s = Persist(record); !s.ok()) LogWarning("%s", s.ToString());
  Publish("unpause", record);
  return absl::OkStatus();
}

absl::StatusOr<int> ContainerManager::LivePid(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(ContainerRecord record, Get(ref));
  if (!IsLive(record.state) || record.pid <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is not running"));
  }
  return record.pid;
}

absl::StatusOr<ContainerManager::ExecSession> ContainerManager::StartExec(
    const std::string& ref, const ShimExecProcess& process) {
  NA_ASSIGN_OR_RETURN(ContainerRecord record, Get(ref));
  if (record.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is not running (",
                     ContainerStateName(record.state), "): exec needs a running container"));
  }
  if (process.args.empty()) return absl::InvalidArgumentError("exec: no command given");
  std::string exec_id = RandomId().substr(0, 16);
  ExecSession session;
  session.dir = absl::StrCat(BundleDir(record.id), "/", kExecDirPrefix, exec_id);
  NA_RETURN_IF_ERROR(linux::MakeDirs(session.dir, 0700));
  absl::Cleanup remove_dir = [&session] { (void)linux::RemoveTree(session.dir); };
  NA_RETURN_IF_ERROR(linux::WriteFileAtomic(absl::StrCat(session.dir, "/process.json"),
                                            SerializeExecProcess(process), 0600,
                                            linux::Durability::kServiceCrash));
  auto launched =
      LaunchExecShim(options_.shim_path, BundleDir(record.id), exec_id, options_.start_timeout);
  if (!launched.ok()) {
    // An exec error ('exec "x": executable file not found') already says what failed.
    if (IsExecError(launched.status())) return launched.status();
    return Annotate(launched.status(), absl::StrCat("exec in ", record.name));
  }
  NA_ASSIGN_OR_RETURN(session.attach, AttachSession::Connect(session.dir));
  std::move(remove_dir).Cancel();
  return session;
}

void ContainerManager::FinishExec(const ExecSession& session) {
  if (absl::Status s = linux::RemoveTree(session.dir); !s.ok()) LogWarning("%s", s.ToString());
}

absl::StatusOr<std::unique_ptr<AttachSession>> ContainerManager::Attach(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(ContainerRecord record, Get(ref));
  if (!IsLive(record.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", record.name, " is not running"));
  }
  auto session = AttachSession::Connect(BundleDir(record.id));
  if (!session.ok()) return Annotate(session.status(), absl::StrCat("attach ", record.name));
  return session;
}

absl::StatusOr<std::vector<MountInfoEntry>> ContainerManager::Mounts(const std::string& ref) {
  NA_ASSIGN_OR_RETURN(int pid, LivePid(ref));
  return ReadMountInfo(pid);
}

absl::StatusOr<NetworkEndpoint> ContainerManager::AttachNetwork(const ContainerRecord& record) {
  const std::string& network = record.config.network_mode;
  if (networks_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "network \"", network, "\" needs the network service, and this runtime has none"));
  }
  absl::StatusOr<NetworkEndpoint> endpoint = networks_->Attach(
      {record.id, record.name, record.config.hostname, network, record.config.ports});
  if (!endpoint.ok()) {
    return Annotate(endpoint.status(), absl::StrCat("attach to network \"", network, "\""));
  }
  return endpoint;
}

void ContainerManager::RememberConnectedNetworks(const std::shared_ptr<Entry>& entry) {
  std::string id, first;
  {
    absl::MutexLock lock(&mu_);
    // One that removes itself will not start again.
    if (networks_ == nullptr || !entry->record.network || entry->record.config.auto_remove) return;
    id = entry->record.id;
    first = entry->record.network->network;
  }
  absl::StatusOr<std::vector<std::string>> names = networks_->NetworksOf(id);
  if (!names.ok()) {
    // Keep what was known: the network service may be down (it is asked again next time).
    LogWarning("container %s: networks connected: %s", id.substr(0, 12), names.status().ToString());
    return;
  }
  std::vector<std::string> extra;
  for (const std::string& name : *names) {
    if (name != first) extra.push_back(name);
  }
  absl::MutexLock lock(&mu_);
  entry->record.extra_networks = std::move(extra);
}

absl::Status ContainerManager::DetachNetwork(const std::shared_ptr<Entry>& entry) {
  std::string id;
  std::string network;
  {
    absl::MutexLock lock(&mu_);
    if (!entry->record.network) return absl::OkStatus();
    id = entry->record.id;
    network = entry->record.network->network;
  }
  if (networks_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", id.substr(0, 12), " holds an endpoint on network \"", network,
                     "\" but this runtime has no network service to give it back to"));
  }
  NA_RETURN_IF_ERROR(Annotate(
      networks_->Detach(id),
      absl::StrCat("detach container ", id.substr(0, 12), " from network \"", network, "\"")));
  absl::MutexLock lock(&mu_);
  entry->record.network.reset();
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::vector<ShimNamespace>>> ContainerManager::ResolveNamespaces(
    const ContainerConfig& config, const std::optional<NetworkEndpoint>& endpoint) {
  // Each mode: "" / "private" (and for ipc "shareable", for net "none"): a new namespace;
  // "host": the host's; "container:REF": the namespace of that running container.
  struct Mode {
    const char* type;
    const std::string& mode;
  };
  const Mode modes[] = {
      {"net", config.network_mode}, {"ipc", config.ipc_mode}, {"pid", config.pid_mode}};
  std::vector<ShimNamespace> namespaces = {{"mnt", ""}, {"uts", ""}, {"cgroup", ""}};
  bool all_default = true;
  for (const Mode& m : modes) {
    if (m.type == std::string("net") && endpoint) {
      namespaces.push_back({"net", endpoint->netns_path});
      all_default = false;
      continue;
    }
    if (m.mode.empty() || m.mode == "private" || m.mode == "none" || m.mode == "shareable") {
      namespaces.push_back({m.type, ""});
      continue;
    }
    all_default = false;
    if (m.mode == "host") continue;
    absl::string_view other = m.mode;
    if (!absl::ConsumePrefix(&other, "container:")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown ", m.type, " namespace mode \"", m.mode, "\""));
    }
    auto pid = LivePid(std::string(other));
    if (!pid.ok()) return Annotate(pid.status(), absl::StrCat("join the ", m.type, " namespace"));
    if (m.type == std::string("ipc")) {
      // As in Docker, a container's IPC namespace is its own unless it was made shareable.
      NA_ASSIGN_OR_RETURN(ContainerRecord owner, Get(std::string(other)));
      if (owner.config.ipc_mode != "shareable") {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot join the IPC namespace of container ", owner.name,
                         ": it is private; start it with --ipc shareable"));
      }
    }
    namespaces.push_back({m.type, absl::StrCat("/proc/", *pid, "/ns/", m.type)});
  }
  if (config.userns.mode == "map" || config.userns.mode == "private") {
    namespaces.push_back({"user", ""});
    all_default = false;
  }
  if (all_default) return std::optional<std::vector<ShimNamespace>>();
  return std::optional<std::vector<ShimNamespace>>(std::move(namespaces));
}

std::string ContainerManager::VolumeDir(const std::string& name) const {
  return absl::StrCat(options_.root, "/volumes/", name);
}

absl::StatusOr<std::vector<MountSpec>> ContainerManager::ResolveMounts(
    const std::vector<MountSpec>& mounts) {
  std::vector<MountSpec> resolved;
  for (const MountSpec& m : mounts) {
    MountSpec out = m;
    if (m.type == "volume") {
      NA_ASSIGN_OR_RETURN(VolumeInfo volume, CreateVolume(m.source));
      out.type = "bind";
      out.source = volume.path;
    } else if (m.type == "bind" && !linux::PathExists(m.source)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bind source \"", m.source, "\" does not exist on the host"));
    }
    resolved.push_back(std::move(out));
  }
  return resolved;
}

absl::StatusOr<ContainerManager::VolumeInfo> ContainerManager::CreateVolume(
    const std::string& name) {
  // Volume names follow container names' rule: no '/', no "..", nothing to escape with.
  NA_RETURN_IF_ERROR(ValidateVolumeName(name));
  VolumeInfo volume;
  volume.name = name;
  volume.path = absl::StrCat(VolumeDir(name), "/_data");
  NA_RETURN_IF_ERROR(linux::MakeDirs(volume.path, 0755));
  return volume;
}

absl::StatusOr<std::vector<ContainerManager::VolumeInfo>> ContainerManager::ListVolumes() {
  std::string dir = absl::StrCat(options_.root, "/volumes");
  if (!linux::PathExists(dir)) return std::vector<VolumeInfo>{};
  NA_ASSIGN_OR_RETURN(std::vector<std::string> names, linux::ListDir(dir));
  std::sort(names.begin(), names.end());
  std::vector<VolumeInfo> out;
  for (const std::string& name : names) {
    VolumeInfo volume;
    volume.name = name;
    volume.path = absl::StrCat(VolumeDir(name), "/_data");
    volume.size_bytes = linux::DiskUsage(volume.path).value_or(0);
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : containers_) {
      for (const MountSpec& m : entry->record.config.mounts) {
        if (m.type == "volume" && m.source == name) volume.used_by.push_back(entry->record.name);
      }
    }
    out.push_back(std::move(volume));
  }
  return out;
}

absl::Status ContainerManager::RemoveVolume(const std::string& name) {
  NA_RETURN_IF_ERROR(ValidateVolumeName(name));
  if (!linux::PathExists(VolumeDir(name))) {
    return absl::NotFoundError(absl::StrCat("no such volume: ", name));
  }
  NA_ASSIGN_OR_RETURN(std::vector<VolumeInfo> volumes, ListVolumes());
  for (const VolumeInfo& volume : volumes) {
    if (volume.name == name && !volume.used_by.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("volume ", name, " is in use by ", absl::StrJoin(volume.used_by, ", ")));
    }
  }
  return linux::RemoveTree(VolumeDir(name));
}

absl::StatusOr<ExitRecord> ContainerManager::Wait(const std::string& ref,
                                                  const CancelledFn& cancelled) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  auto done = [&entry]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return entry->removed || entry->record.state == ContainerState::kExited ||
           (entry->record.state == ContainerState::kCreated && !entry->record.start_error.empty());
  };
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&done), kWaitSlice)) {
    if (cancelled && cancelled()) return absl::CancelledError("wait cancelled");
  }
  return entry->record.exit;
}

absl::Status ContainerManager::Remove(const std::string& ref, bool force) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  for (int attempt = 0;; ++attempt) {
    ContainerRecord record;
    {
      absl::MutexLock op(&entry->op_mu);
      {
        absl::MutexLock lock(&mu_);
        if (entry->removed) return absl::NotFoundError(absl::StrCat("no such container: ", ref));
        record = entry->record;
      }
      bool running = IsLive(record.state);
      if (!running) return RemoveResources(entry);
      if (!force) {
        return absl::FailedPreconditionError(absl::StrCat(
            "container ", record.name, " is running: stop it first or remove it with force"));
      }
      if (attempt > 0) {
        return absl::DeadlineExceededError(
            absl::StrCat("container ", record.name, " did not exit after SIGKILL"));
      }
    }
    // Outside op_mu: the exit is recorded by OnShimExit, which takes it.
    if (absl::Status s = Kill(record.id, SIGKILL); !s.ok() && !absl::IsFailedPrecondition(s)) {
      return s;
    }
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    auto waited = Wait(record.id, [deadline] { return absl::Now() > deadline; });
    if (!waited.ok() && !absl::IsNotFound(waited.status())) return waited.status();
  }
}

absl::Status ContainerManager::StreamOutput(const std::string& ref, bool follow, int tail,
                                            const RecordSink& sink, const CancelledFn& cancelled) {
  NA_ASSIGN_OR_RETURN(std::shared_ptr<Entry> entry, Find(ref));
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = entry->record.id;
  }
  const std::string bundle = BundleDir(id);
  const std::string log_path = absl::StrCat(bundle, "/", kContainerLogFile);
  const std::string exit_path = absl::StrCat(bundle, "/", kExitFile);
  // Watch before the first read, so no write between the read and the wait is missed.
  std::unique_ptr<DirWatch> watch;
  if (follow) {
    NA_ASSIGN_OR_RETURN(watch, watches_->Watch(bundle));
  }
  auto finished = [&]() {
    if (linux::PathExists(exit_path)) return true;
    absl::MutexLock lock(&mu_);
    return entry->removed || entry->record.state == ContainerState::kExited ||
           (entry->record.state == ContainerState::kCreated && !entry->record.start_error.empty());
  };

  linux::UniqueFd log;
  std::string buffer;
  std::deque<LogRecord> tail_records;
  bool backlog = true;  // Still reading what was written before the call.
  char chunk[65536];
  while (true) {
    bool done_before_read = !follow || finished();
    if (!log) {
      auto opened = linux::OpenFile(log_path, O_RDONLY);
      if (opened.ok()) log = *std::move(opened);
    }
    if (log) {
      while (true) {
        ssize_t n = ::read(log.get(), chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buffer.append(chunk, static_cast<size_t>(n));
        NA_ASSIGN_OR_RETURN(DecodedLogRecords decoded, DecodeLogRecords(buffer));
        buffer.erase(0, decoded.consumed);
        for (LogRecord& record : decoded.records) {
          if (backlog && tail > 0) {
            // --tail counts lines, as Docker's does; a record can hold several.
            for (LogRecord& line : SplitLines(std::move(record))) {
              tail_records.push_back(std::move(line));
              if (tail_records.size() > static_cast<size_t>(tail)) tail_records.pop_front();
            }
          } else if (!sink(record)) {
            return absl::OkStatus();
          }
        }
      }
    }
    if (backlog) {
      backlog = false;
      for (const LogRecord& record : tail_records) {
        if (!sink(record)) return absl::OkStatus();
      }
      tail_records.clear();
    }
    if (done_before_read) return absl::OkStatus();
    if (cancelled && cancelled()) return absl::CancelledError("output stream cancelled");
    watch->WaitForChange(kWaitSlice);
  }
}

}  // namespace nodeagent::runtime
