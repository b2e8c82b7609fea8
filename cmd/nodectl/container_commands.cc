// nodectl run / create / start / ps / inspect / logs / kill / wait / rm.

#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "cmd/nodectl/commands.h"
#include "cmd/nodectl/run_flags.h"
#include "cmd/nodectl/signals.h"
#include "services/common/linux/terminal.h"
#include "services/network/core/state.h"

namespace nodeagent::nodectl {
namespace {

// Docker's: Ctrl-P Ctrl-Q leaves an attached terminal with the container running.
constexpr char kDefaultDetachKeys[] = "ctrl-p,ctrl-q";
// What PumpStdio returns when the user detached (the process exits 0, as Docker's).
constexpr int kDetached = -1;

struct RunOptions {
  bool remove = false;
  bool detach = false;
  std::string name;
  std::string hostname;
  std::vector<std::string> env;
  std::string workdir;
  std::string memory;
  std::string cpus;
  int cpu_percent = 0;
  int64_t pids_limit = 0;
  std::string cpuset_cpus;
  std::vector<std::string> labels;
  std::vector<std::string> volumes;
  std::vector<std::string> tmpfs;
  std::vector<std::string> mounts;
  bool tty = false;
  bool interactive = false;
  // Docker's default: an endpoint on the default bridge network.
  std::string network = "bridge";
  std::vector<std::string> publish;
  std::string ipc;
  std::string pid;
  std::string user;
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  bool privileged = false;
  std::vector<std::string> security_opts;
  bool read_only = false;
  bool init = false;
  std::string prompt;
  std::string stop_signal;
  int stop_timeout = 0;
  std::string userns;
  std::vector<std::string> uidmaps;
  std::vector<std::string> gidmaps;
  std::string detach_keys = kDefaultDetachKeys;
};

void WriteAllTo(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) return;  // The reader went away; keep draining the stream.
    done += static_cast<size_t>(n);
  }
}

// `-e KEY` without a value takes KEY from nodectl's own environment, as Docker does.
std::vector<std::string> ResolveEnv(const std::vector<std::string>& entries) {
  std::vector<std::string> out;
  for (const std::string& entry : entries) {
    if (entry.find('=') != std::string::npos) {
      out.push_back(entry);
    } else if (const char* value = std::getenv(entry.c_str())) {
      out.push_back(absl::StrCat(entry, "=", value));
    }
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// Says why a foreground container ended when its own output may not (a start error, an OOM
// kill) and returns its exit code.
int ReportExit(const v1::ExitStatus& exit) {
  if (!exit.error().empty()) PrintError(exit.error());
  if (exit.oom_killed()) {
    PrintError(
        absl::StrCat("the container was killed by the kernel's OOM killer: it reached its "
                     "memory limit (-m/--memory); exit code ",
                     exit.exit_code()));
  }
  return exit.exit_code();
}

std::string StatusText(const v1::Container& c) {
  switch (c.state()) {
    case v1::CONTAINER_STATE_RUNNING:
      return absl::StrCat("Up ",
                          HumanDuration(absl::ToUnixNanos(absl::Now()) - c.started_unix_nanos()));
    case v1::CONTAINER_STATE_PAUSED:
      return "Paused";
    case v1::CONTAINER_STATE_EXITED:
      return absl::StrCat("Exited (", c.exit_code(), ") ", HumanAgo(c.finished_unix_nanos()));
    case v1::CONTAINER_STATE_CREATED:
      return c.exit_code() != 0 ? absl::StrCat("Created (start failed: ", c.exit_code(), ")")
                                : "Created";
    default:
      return "Unknown";
  }
}

absl::StatusOr<v1::ContainerSpec> MakeSpec(const RunOptions& options,
                                           const std::vector<std::string>& positional) {
  v1::ContainerSpec spec;
  spec.set_image(positional[0]);
  for (size_t i = 1; i < positional.size(); ++i) spec.add_args(positional[i]);
  for (const std::string& e : ResolveEnv(options.env)) spec.add_env(e);
  spec.set_working_dir(options.workdir);
  spec.set_hostname(options.hostname);
  spec.set_auto_remove(options.remove);
  spec.mutable_network()->set_mode(options.network);
  for (const std::string& published : options.publish) {
    absl::StatusOr<network::PortMapping> port = network::ParsePortSpec(published);
    if (!port.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid -p \"", published, "\": ", port.status().message()));
    }
    v1::PortMapping* p = spec.mutable_network()->add_ports();
    p->set_host_ip(port->host_ip);
    p->set_host_port(port->host_port);
    p->set_container_port(port->container_port);
    p->set_protocol(port->protocol);
  }
  spec.set_ipc_mode(options.ipc);
  spec.set_pid_mode(options.pid);
  spec.set_user(options.user);
  for (const std::string& cap : options.cap_add) spec.add_cap_add(cap);
  for (const std::string& cap : options.cap_drop) spec.add_cap_drop(cap);
  spec.set_privileged(options.privileged);
  for (const std::string& opt : options.security_opts) {
    absl::string_view value = opt;
    if (absl::ConsumePrefix(&value, "seccomp=") || absl::ConsumePrefix(&value, "seccomp:")) {
      if (value == "default" || value == "unconfined") {
        spec.set_seccomp_profile(std::string(value));
        continue;
      }
      // A file with a Docker-format JSON profile: its contents go to the runtime, as Docker's.
      std::ifstream file{std::string(value)};
      std::stringstream text;
      text << file.rdbuf();
      if (!file.good() || text.str().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--security-opt seccomp=", value, ": cannot read \"", value, "\" (",
                         strerror(errno), "); want default, unconfined or a JSON profile file"));
      }
      spec.set_seccomp_profile(text.str());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported --security-opt \"", opt, "\": only seccomp=... is"));
    }
  }
  spec.set_read_only_rootfs(options.read_only);
  spec.set_tty(options.tty);
  spec.set_stdin_open(options.interactive);
  spec.set_init(options.init || !options.prompt.empty());
  spec.set_init_prompt(options.prompt);
  if (!options.stop_signal.empty()) {
    int sig = ParseSignal(options.stop_signal);
    if (sig == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown --stop-signal \"", options.stop_signal, "\""));
    }
    spec.set_stop_signal(sig);
  }
  if (options.stop_timeout < 0) {
    return absl::InvalidArgumentError("--stop-timeout must not be negative");
  }
  spec.set_stop_timeout_seconds(options.stop_timeout);
  v1::Resources* resources = spec.mutable_resources();
  if (!options.memory.empty()) {
    auto bytes = ParseMemoryBytes(options.memory);
    if (!bytes.ok()) return bytes.status();
    resources->set_memory_bytes(*bytes);
  }
  int host_cpus = static_cast<int>(std::thread::hardware_concurrency());
  if (!options.cpus.empty() && options.cpu_percent != 0) {
    return absl::InvalidArgumentError("--cpus and --cpu-percent are two ways to say one thing");
  }
  if (!options.cpus.empty() || options.cpu_percent != 0) {
    auto quota = options.cpus.empty() ? CpuQuotaFromPercent(options.cpu_percent, host_cpus)
                                      : CpuQuotaFromCpus(options.cpus, host_cpus);
    if (!quota.ok()) return quota.status();
    resources->set_cpu_quota_us(quota->quota_us);
    resources->set_cpu_period_us(quota->period_us);
  }
  if (options.pids_limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pids-limit ", options.pids_limit, " is negative"));
  }
  resources->set_pids_limit(options.pids_limit);
  resources->set_cpuset_cpus(options.cpuset_cpus);
  std::vector<MountFlag> mounts;
  for (const std::string& v : options.volumes) {
    auto mount = ParseVolumeFlag(v);
    if (!mount.ok()) return mount.status();
    mounts.push_back(*mount);
  }
  for (const std::string& t : options.tmpfs) {
    auto mount = ParseTmpfsFlag(t);
    if (!mount.ok()) return mount.status();
    mounts.push_back(*mount);
  }
  for (const std::string& m : options.mounts) {
    auto mount = ParseMountFlag(m);
    if (!mount.ok()) return mount.status();
    mounts.push_back(*mount);
  }
  for (const MountFlag& m : mounts) {
    v1::Mount* out = spec.add_mounts();
    out->set_type(m.type);
    out->set_source(m.source);
    out->set_destination(m.destination);
    for (const std::string& o : m.options) out->add_options(o);
  }
  auto labels = ParseLabels(options.labels);
  if (!labels.ok()) return labels.status();
  spec.mutable_labels()->insert(labels->begin(), labels->end());
  // User namespace: --userns=private (the runtime picks a range) or --uidmap/--gidmap.
  v1::UserNamespace* userns = spec.mutable_userns();
  for (const auto& [flag, list, out] :
       {std::tuple{"--uidmap", &options.uidmaps, userns->mutable_uid_mappings()},
        std::tuple{"--gidmap", &options.gidmaps, userns->mutable_gid_mappings()}}) {
    for (const std::string& text : *list) {
      auto m = ParseIdMapFlag(text);
      if (!m.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": ", m.status().message()));
      }
      v1::IdMapping* mapping = out->Add();
      mapping->set_container_id(m->container_id);
      mapping->set_host_id(m->host_id);
      mapping->set_size(m->size);
    }
  }
  // One of the two maps alone stands for both, as podman's.
  if (userns->uid_mappings().empty()) *userns->mutable_uid_mappings() = userns->gid_mappings();
  if (userns->gid_mappings().empty()) *userns->mutable_gid_mappings() = userns->uid_mappings();
  if (!userns->uid_mappings().empty()) {
    if (!options.userns.empty() && options.userns != "map") {
      return absl::InvalidArgumentError(
          absl::StrCat("--uidmap/--gidmap and --userns=", options.userns, " do not go together"));
    }
    userns->set_mode("map");
  } else {
    userns->set_mode(options.userns == "host" ? "" : options.userns);
  }
  if (auto keys = ParseDetachKeys(options.detach_keys); !keys.ok()) return keys.status();
  return spec;
}

// Creates the container and, with `start`, starts it. Returns its id, or the exit code `run`
// reports after printing why (125, or Docker's 127/126 for a command not found / not runnable).
struct Launched {
  std::string id;
  int exit_code = 0;
};
Launched Launch(CliContext& ctx, const RunOptions& options,
                const std::vector<std::string>& positional, bool start) {
  auto stub = ctx.Runtime();
  v1::CreateContainerRequest create;
  create.set_name(options.name);
  auto spec = MakeSpec(options, positional);
  if (!spec.ok()) {
    PrintError(std::string(spec.status().message()));
    return {"", kExitRunError};
  }
  *create.mutable_spec() = *std::move(spec);
  v1::CreateContainerResponse created;
  // Long enough for the first container of an image kept unpacked (pull --skip-unpack).
  auto context = CliContext::Deadline(3600);
  grpc::Status status = stub->CreateContainer(context.get(), create, &created);
  if (!status.ok()) {
    PrintError("create container", status, "runtime");
    return {"", kExitRunError};
  }
  if (start) {
    v1::StartContainerRequest request;
    request.set_id(created.container().id());
    v1::StartContainerResponse response;
    auto start_context = CliContext::Deadline(60);
    status = stub->StartContainer(start_context.get(), request, &response);
    if (!status.ok()) {
      PrintError("start container", status, "runtime");
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) return {"", 127};
      if (status.error_code() == grpc::StatusCode::PERMISSION_DENIED) return {"", 126};
      return {"", kExitRunError};
    }
  }
  return {created.container().id(), 0};
}

int CreateAndMaybeStart(CliContext& ctx, const RunOptions& options,
                        const std::vector<std::string>& positional, bool start) {
  Launched launched = Launch(ctx, options, positional, start);
  if (launched.id.empty()) return launched.exit_code;
  std::cout << launched.id << std::endl;
  return 0;
}

int RunForeground(CliContext& ctx, const RunOptions& options,
                  const std::vector<std::string>& positional) {
  auto stub = ctx.Runtime();
  v1::RunContainerRequest request;
  request.set_name(options.name);
  auto spec = MakeSpec(options, positional);
  if (!spec.ok()) {
    PrintError(std::string(spec.status().message()));
    return kExitRunError;
  }
  *request.mutable_spec() = *std::move(spec);

  // No deadline: the container runs as long as it runs. Signals end it instead.
  grpc::ClientContext context;
  std::mutex id_mu;
  std::string container_id;
  SetSignalHandler([&](int sig) {
    std::string id;
    {
      std::lock_guard<std::mutex> lock(id_mu);
      id = container_id;
    }
    if (id.empty()) {
      context.TryCancel();
      return;
    }
    v1::KillContainerRequest kill;
    kill.set_id(id);
    kill.set_signal(sig);
    v1::KillContainerResponse killed;
    auto kill_context = CliContext::Deadline(10);
    (void)ctx.Runtime()->KillContainer(kill_context.get(), kill, &killed);
  });

  auto reader = stub->RunContainer(&context, request);
  v1::RunContainerResponse response;
  int exit_code = kExitRunError;
  bool exited = false;
  while (reader->Read(&response)) {
    switch (response.event_case()) {
      case v1::RunContainerResponse::kStarted: {
        std::lock_guard<std::mutex> lock(id_mu);
        container_id = response.started().id();
        break;
      }
      case v1::RunContainerResponse::kOutput:
        WriteAllTo(response.output().stream() == v1::OutputChunk::STREAM_STDERR ? STDERR_FILENO
                                                                                : STDOUT_FILENO,
                   response.output().data());
        break;
      case v1::RunContainerResponse::kExit:
        exited = true;
        exit_code = ReportExit(response.exit());
        break;
      default:
        break;
    }
  }
  grpc::Status status = reader->Finish();
  SetSignalHandler(nullptr);
  if (!status.ok()) {
    PrintError("run", status, "runtime");
    return kExitRunError;
  }
  if (!exited) {
    PrintError("run: the runtime ended the stream without an exit status");
    return kExitRunError;
  }
  return exit_code;
}

int Start(CliContext& ctx, const std::vector<std::string>& ids) {
  auto stub = ctx.Runtime();
  int rc = 0;
  for (const std::string& id : ids) {
    v1::StartContainerRequest request;
    request.set_id(id);
    v1::StartContainerResponse response;
    auto context = CliContext::Deadline(60);
    grpc::Status status = stub->StartContainer(context.get(), request, &response);
    if (!status.ok()) {
      PrintError(absl::StrCat("start ", id), status, "runtime");
      rc = kExitFailure;
      continue;
    }
    std::cout << id << "\n";
  }
  return rc;
}

int Ps(CliContext& ctx, bool all, bool quiet) {
  auto stub = ctx.Runtime();
  v1::ListContainersRequest request;
  request.set_all(all);
  v1::ListContainersResponse response;
  auto context = CliContext::Deadline();
  grpc::Status status = stub->ListContainers(context.get(), request, &response);
  if (!status.ok()) {
    PrintError("list containers", status, "runtime");
    return kExitFailure;
  }
  if (ctx.options().format == "json") {
    std::cout << ToJson(response);
    return 0;
  }
  if (quiet) {
    for (const v1::Container& c : response.containers()) std::cout << c.id().substr(0, 12) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Container& c : response.containers()) {
    std::string command = absl::StrJoin(c.spec().args(), " ");
    if (command.size() > 30) command = absl::StrCat(command.substr(0, 27), "...");
    rows.push_back({c.id().substr(0, 12), c.spec().image(), absl::StrCat("\"", command, "\""),
                    HumanAgo(c.created_unix_nanos()), StatusText(c), c.name()});
  }
  PrintTable({"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"}, rows);
  return 0;
}

int Inspect(CliContext& ctx, const std::vector<std::string>& ids) {
  auto stub = ctx.Runtime();
  int rc = 0;
  std::vector<std::string> documents;
  for (const std::string& id : ids) {
    v1::GetContainerRequest request;
    request.set_id(id);
    v1::GetContainerResponse response;
    auto context = CliContext::Deadline();
    grpc::Status status = stub->GetContainer(context.get(), request, &response);
    if (!status.ok()) {
      PrintError(absl::StrCat("inspect ", id), status, "runtime");
      rc = kExitFailure;
      continue;
    }
    documents.push_back(ToJson(response.container()));
  }
  std::cout << "[" << absl::StrJoin(documents, ",") << "]\n";
  return rc;
}

struct LogsOptions {
  std::string id;
  bool follow = false;
  int tail = 0;
  bool timestamps = false;
};

int Logs(CliContext& ctx, const LogsOptions& options) {
  auto stub = ctx.Runtime();
  v1::ContainerLogsRequest request;
  request.set_id(options.id);
  request.set_follow(options.follow);
  request.set_tail(options.tail);
  // Following has no natural end; without -f the stored log is bounded.
  grpc::ClientContext context;
  if (!options.follow) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  }
  auto reader = stub->ContainerLogs(&context, request);
  v1::ContainerLogsResponse response;
  while (reader->Read(&response)) {
    std::string data = response.output().data();
    if (options.timestamps) {
      absl::Time t = absl::FromUnixNanos(response.output().timestamp_unix_nanos());
      data = absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ ", t, absl::UTCTimeZone()), data);
    }
    WriteAllTo(response.output().stream() == v1::OutputChunk::STREAM_STDERR ? STDERR_FILENO
                                                                            : STDOUT_FILENO,
               data);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    PrintError(absl::StrCat("logs ", options.id), status, "runtime");
    return kExitFailure;
  }
  return 0;
}

int Kill(CliContext& ctx, const std::vector<std::string>& ids, const std::string& signal_name) {
  int sig = ParseSignal(signal_name);
  if (sig == 0) {
    PrintError(absl::StrCat("kill: unknown signal \"", signal_name, "\""));
    return kExitFailure;
  }
  auto stub = ctx.Runtime();
  return ForEachName(ids, "kill", "runtime", [&](const std::string& id, std::string*) {
    v1::KillContainerRequest request;
    request.set_id(id);
    request.set_signal(sig);
    v1::KillContainerResponse response;
    auto context = CliContext::Deadline();
    return stub->KillContainer(context.get(), request, &response);
  });
}

int Wait(CliContext& ctx, const std::vector<std::string>& ids) {
  auto stub = ctx.Runtime();
  return ForEachName(ids, "wait", "runtime", [&](const std::string& id, std::string* out) {
    v1::WaitContainerRequest request;
    request.set_id(id);
    v1::WaitContainerResponse response;
    grpc::ClientContext context;  // Waits as long as the container runs.
    grpc::Status status = stub->WaitContainer(&context, request, &response);
    *out = absl::StrCat(response.exit().exit_code());
    return status;
  });
}

int Remove(CliContext& ctx, const std::vector<std::string>& ids, bool force) {
  auto stub = ctx.Runtime();
  return ForEachName(ids, "rm", "runtime", [&](const std::string& id, std::string*) {
    v1::RemoveContainerRequest request;
    request.set_id(id);
    request.set_force(force);
    v1::RemoveContainerResponse response;
    auto context = CliContext::Deadline(60);
    return stub->RemoveContainer(context.get(), request, &response);
  });
}

int Stop(CliContext& ctx, const std::vector<std::string>& ids, int timeout_seconds) {
  auto stub = ctx.Runtime();
  return ForEachName(ids, "stop", "runtime", [&](const std::string& id, std::string*) {
    v1::StopContainerRequest request;
    request.set_id(id);
    request.set_timeout_seconds(timeout_seconds);
    v1::StopContainerResponse response;
    // The grace period plus time for SIGKILL to land.
    auto context = CliContext::Deadline(std::max(timeout_seconds, 10) + 30);
    return stub->StopContainer(context.get(), request, &response);
  });
}

int PauseOrUnpause(CliContext& ctx, const std::vector<std::string>& ids, bool pause) {
  auto stub = ctx.Runtime();
  return ForEachName(ids, pause ? "pause" : "unpause", "runtime",
                     [&](const std::string& id, std::string*) {
                       auto context = CliContext::Deadline();
                       if (pause) {
                         v1::PauseContainerRequest request;
                         request.set_id(id);
                         v1::PauseContainerResponse response;
                         return stub->PauseContainer(context.get(), request, &response);
                       }
                       v1::ResumeContainerRequest request;
                       request.set_id(id);
                       v1::ResumeContainerResponse response;
                       return stub->ResumeContainer(context.get(), request, &response);
                     });
}

// Pumps an attach or exec stream between this terminal and the container until the exit
// message: raw mode with a tty, local input with `interactive`, window-size changes, other
// signals sent to the container. Returns the exit code, or kDetached when the input held
// `detach_keys` (ParseDetachKeys bytes; empty: none): the call ends, the container runs on.
template <typename Request, typename Response>
int PumpStdio(CliContext& ctx, const std::string& container_id,
              grpc::ClientReaderWriterInterface<Request, Response>* stream,
              grpc::ClientContext* context, Request first, bool tty, bool interactive,
              const std::string& detach_keys = "") {
  // Shared with the input thread, which can outlive this call (a read() on a terminal cannot
  // be interrupted): once `finished` is set it touches nothing of the call again.
  struct InputState {
    std::mutex mu;  // gRPC allows one writer at a time; input and resize both write.
    bool finished = false;
    std::atomic<bool> detached{false};
  };
  auto state = std::make_shared<InputState>();
  if (auto size = linux::TerminalSize(STDIN_FILENO); size && tty) {
    first.set_rows(static_cast<uint32_t>(size->first));
    first.set_cols(static_cast<uint32_t>(size->second));
  }
  if (!stream->Write(first)) {
    PrintError(absl::StrCat("attach ", container_id), stream->Finish(), "runtime");
    return kExitRunError;
  }
  std::optional<linux::RawTerminal> raw;
  if (tty && linux::IsTerminal(STDIN_FILENO)) {
    auto entered = linux::RawTerminal::Enter(STDIN_FILENO);
    if (entered.ok()) raw.emplace(*std::move(entered));
  }
  SetSignalHandler([&](int sig) {
    if (sig == SIGWINCH) {
      auto size = linux::TerminalSize(STDIN_FILENO);
      if (!size) return;
      Request resize;
      resize.set_rows(static_cast<uint32_t>(size->first));
      resize.set_cols(static_cast<uint32_t>(size->second));
      std::lock_guard<std::mutex> lock(state->mu);
      if (!state->finished) stream->Write(resize);
      return;
    }
    v1::KillContainerRequest kill;
    kill.set_id(container_id);
    kill.set_signal(sig);
    v1::KillContainerResponse killed;
    auto kill_context = CliContext::Deadline(10);
    (void)ctx.Runtime()->KillContainer(kill_context.get(), kill, &killed);
  });
  if (interactive) {
    std::thread([stream, state, detach_keys, context] {
      std::string buffer(65536, '\0');
      size_t matched = 0;  // Bytes of detach_keys seen last, held back until they decide.
      while (true) {
        ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        std::string data;
        for (ssize_t i = 0; i < n && !detach_keys.empty(); ++i) {
          char c = buffer[static_cast<size_t>(i)];
          if (c == detach_keys[matched]) {
            if (++matched < detach_keys.size()) continue;
            // Detach: end the call; the container keeps running and its stdin stays open.
            std::lock_guard<std::mutex> lock(state->mu);
            if (state->finished) return;
            state->detached.store(true);
            context->TryCancel();
            return;
          }
          data.append(detach_keys, 0, matched);  // Not the sequence after all: pass it on.
          matched = 0;
          if (c == detach_keys[0]) {
            matched = 1;
          } else {
            data.push_back(c);
          }
        }
        if (detach_keys.empty() && n > 0) data.assign(buffer.data(), static_cast<size_t>(n));
        std::lock_guard<std::mutex> lock(state->mu);
        if (state->finished) return;
        Request input;
        if (n <= 0) {
          input.set_close_stdin(true);
          stream->Write(input);
          return;
        }
        if (data.empty()) continue;
        input.set_stdin(data);
        if (!stream->Write(input)) return;
      }
    }).detach();
  }
  int exit_code = kExitRunError;
  bool exited = false;
  Response response;
  while (stream->Read(&response)) {
    if (response.has_output()) {
      WriteAllTo(response.output().stream() == v1::OutputChunk::STREAM_STDERR ? STDERR_FILENO
                                                                              : STDOUT_FILENO,
                 response.output().data());
    }
    if (response.has_exit()) {
      exited = true;
      exit_code = ReportExit(response.exit());
      break;
    }
  }
  SetSignalHandler(nullptr);
  raw.reset();
  int result = kExitRunError;
  if (exited) {
    context->TryCancel();  // Ends our half too (and any Write of the input thread).
    result = exit_code;
  } else if (state->detached.load()) {
    result = kDetached;  // The input thread cancelled the call.
  } else {
    // The service ended the call without an exit: its status says why.
    grpc::Status status = stream->Finish();
    PrintError(container_id, status, "runtime");
  }
  // Waits for the input thread to be out of the call (a detach's TryCancel included): the
  // stream and context die with our caller.
  std::lock_guard<std::mutex> lock(state->mu);
  state->finished = true;
  return result;
}

int AttachTo(CliContext& ctx, const std::string& id, bool tty, bool interactive,
             const std::string& detach_keys = "") {
  grpc::ClientContext context;  // As long as the container runs.
  auto stream = ctx.Runtime()->AttachContainer(&context);
  v1::AttachContainerRequest first;
  first.set_id(id);
  return PumpStdio(ctx, id, stream.get(), &context, first, tty, interactive, detach_keys);
}

struct ExecOptions {
  bool tty = false;
  bool interactive = false;
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  bool privileged = false;
};

int Exec(CliContext& ctx, const ExecOptions& options, const std::vector<std::string>& positional) {
  if (positional.size() < 2) {
    PrintError("exec: usage: nodectl exec [OPTIONS] CONTAINER COMMAND [ARG...]");
    return kExitRunError;
  }
  grpc::ClientContext context;  // As long as the process runs.
  auto stream = ctx.Runtime()->ExecContainer(&context);
  v1::ExecContainerRequest first;
  first.set_id(positional[0]);
  for (size_t i = 1; i < positional.size(); ++i) first.add_args(positional[i]);
  for (const std::string& e : ResolveEnv(options.env)) first.add_env(e);
  first.set_working_dir(options.workdir);
  first.set_user(options.user);
  first.set_tty(options.tty);
  first.set_stdin_open(options.interactive);
  first.set_privileged(options.privileged);
  return PumpStdio(ctx, positional[0], stream.get(), &context, first, options.tty,
                   options.interactive);
}

int RunInteractive(CliContext& ctx, const RunOptions& options,
                   const std::vector<std::string>& positional) {
  Launched launched = Launch(ctx, options, positional, /*start=*/true);
  if (launched.id.empty()) return launched.exit_code;
  const std::string& id = launched.id;
  auto stub = ctx.Runtime();
  int exit_code =
      AttachTo(ctx, id, options.tty, options.interactive, *ParseDetachKeys(options.detach_keys));
  if (exit_code == kDetached) return 0;  // Running on; with --rm the runtime removes it later.
  if (options.remove) {
    // The runtime removes it once the exit is recorded; return only after that, as `run --rm`
    // without -i does, so a script's next command sees it gone.
    v1::WaitContainerRequest wait;
    wait.set_id(id);
    v1::WaitContainerResponse waited;
    auto wait_context = CliContext::Deadline(30);
    (void)stub->WaitContainer(wait_context.get(), wait, &waited);
    v1::RemoveContainerRequest remove;
    remove.set_id(id);
    v1::RemoveContainerResponse removed;
    auto remove_context = CliContext::Deadline(30);
    grpc::Status status = stub->RemoveContainer(remove_context.get(), remove, &removed);
    if (!status.ok() && status.error_code() != grpc::StatusCode::NOT_FOUND) {
      PrintError(absl::StrCat("rm ", id), status, "runtime");
    }
  }
  return exit_code;
}

void AddRunFlags(CLI::App* cmd, RunOptions* options) {
  cmd->add_flag("-t,--tty", options->tty, "Allocate a terminal");
  cmd->add_flag("-i,--interactive", options->interactive, "Keep stdin open and send it");
  cmd->add_option("--network", options->network,
                  "bridge (the default network), a network's name, none, host or container:NAME")
      ->capture_default_str();
  cmd->add_option("-p,--publish", options->publish,
                  "Publish a port: [IP:]HOSTPORT:CTRPORT[/tcp|udp] (bridge networks)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--ipc", options->ipc, "private, shareable, host or container:NAME");
  cmd->add_option("--pid", options->pid, "private, host or container:NAME");
  cmd->add_option("-u,--user", options->user, "uid[:gid] or name[:group]");
  cmd->add_option("--cap-add", options->cap_add, "Add a capability (or ALL)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--cap-drop", options->cap_drop, "Drop a capability (or ALL)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_flag("--privileged", options->privileged, "Turn hardening off");
  cmd->add_option("--security-opt", options->security_opts, "seccomp=default|unconfined")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_flag("--read-only", options->read_only, "Mount the rootfs read-only");
  cmd->add_flag("--init", options->init, "Run an init as PID 1 that reaps and forwards signals");
  cmd->add_option("--prompt", options->prompt, "With --init: the shell prompt (PS1) it sets");
  cmd->add_option("--stop-signal", options->stop_signal, "Signal `stop` sends first");
  cmd->add_option("--stop-timeout", options->stop_timeout, "Seconds `stop` waits before SIGKILL");
  cmd->add_option("--name", options->name, "Container name");
  cmd->add_option("--hostname", options->hostname, "Container hostname");
  cmd->add_option("-e,--env", options->env, "Set an environment variable (KEY=VALUE or KEY)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("-w,--workdir", options->workdir, "Working directory inside the container");
  cmd->add_flag("--rm", options->remove, "Remove the container when it exits");
  cmd->add_option("-m,--memory", options->memory, "Memory limit (bytes, or with k, m, g)");
  cmd->add_option("--cpus", options->cpus, "CPU limit in CPUs (e.g. 0.5)");
  cmd->add_option("--cpu-percent", options->cpu_percent, "CPU limit in percent of one CPU");
  cmd->add_option("--pids-limit", options->pids_limit, "Maximum number of processes");
  cmd->add_option("--cpuset-cpus", options->cpuset_cpus, "CPUs to run on (e.g. 0-1,3)");
  cmd->add_option("-v,--volume", options->volumes, "Bind HOST:CTR[:ro] or volume NAME:CTR[:ro]")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--tmpfs", options->tmpfs, "tmpfs at CTR[:size=64m,mode=1777]")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--mount", options->mounts,
                  "type=bind|volume|tmpfs,src=..,dst=..[,readonly][,bind-propagation=..]")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("-l,--label", options->labels, "Set a label (k=v)")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--userns", options->userns,
                  "User namespace: host (none) or private (a range of 65536 ids of its own)");
  cmd->add_option("--uidmap", options->uidmaps, "User namespace uid map CONTAINER:HOST:SIZE")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--gidmap", options->gidmaps, "User namespace gid map CONTAINER:HOST:SIZE")
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--detach-keys", options->detach_keys,
                  "Keys that detach from the container (Docker's syntax)")
      ->capture_default_str();
  // IMAGE and COMMAND...: everything from the first positional on belongs to the container.
  cmd->prefix_command();
}

}  // namespace

void RegisterContainerCommands(CLI::App& app, CliContext& context, int* exit_code) {
  auto run_options = std::make_shared<RunOptions>();
  CLI::App* run = app.add_subcommand("run", "Run a command in a new container");
  AddRunFlags(run, run_options.get());
  run->add_flag("-d,--detach", run_options->detach, "Run in the background and print the id");
  run->callback([&context, exit_code, run_options, run] {
    std::vector<std::string> positional = run->remaining();
    if (positional.empty()) {
      PrintError("run: no image given; usage: nodectl run [OPTIONS] IMAGE [COMMAND [ARG...]]");
      *exit_code = kExitRunError;
      return;
    }
    if (run_options->detach) {
      *exit_code = CreateAndMaybeStart(context, *run_options, positional, /*start=*/true);
    } else if (run_options->tty || run_options->interactive) {
      *exit_code = RunInteractive(context, *run_options, positional);
    } else {
      *exit_code = RunForeground(context, *run_options, positional);
    }
  });

  auto create_options = std::make_shared<RunOptions>();
  CLI::App* create = app.add_subcommand("create", "Create a container without starting it");
  AddRunFlags(create, create_options.get());
  create->callback([&context, exit_code, create_options, create] {
    std::vector<std::string> positional = create->remaining();
    if (positional.empty()) {
      PrintError("create: no image given");
      *exit_code = kExitRunError;
      return;
    }
    *exit_code = CreateAndMaybeStart(context, *create_options, positional, /*start=*/false);
  });

  auto ids = std::make_shared<std::vector<std::string>>();
  CLI::App* start = app.add_subcommand("start", "Start created containers");
  start->add_option("containers", *ids, "Containers")->required();
  start->callback([&context, exit_code, ids] { *exit_code = Start(context, *ids); });

  auto ps_all = std::make_shared<bool>(false);
  auto ps_quiet = std::make_shared<bool>(false);
  CLI::App* ps = app.add_subcommand("ps", "List containers");
  ps->add_flag("-a,--all", *ps_all, "Show all containers, not only running ones");
  ps->add_flag("-q,--quiet", *ps_quiet, "Only ids");
  ps->callback(
      [&context, exit_code, ps_all, ps_quiet] { *exit_code = Ps(context, *ps_all, *ps_quiet); });

  CLI::App* inspect = app.add_subcommand("inspect", "Show containers as JSON");
  inspect->add_option("containers", *ids, "Containers")->required();
  inspect->callback([&context, exit_code, ids] { *exit_code = Inspect(context, *ids); });

  auto logs_options = std::make_shared<LogsOptions>();
  CLI::App* logs = app.add_subcommand("logs", "Show a container's output");
  logs->add_option("container", logs_options->id, "Container")->required();
  logs->add_flag("-f,--follow", logs_options->follow, "Keep following the output");
  logs->add_option("-n,--tail", logs_options->tail, "Only the last N records")
      ->check(CLI::NonNegativeNumber);
  logs->add_flag("-t,--timestamps", logs_options->timestamps, "Prefix each record with its time");
  logs->callback(
      [&context, exit_code, logs_options] { *exit_code = Logs(context, *logs_options); });

  auto signal_name = std::make_shared<std::string>("KILL");
  CLI::App* kill = app.add_subcommand("kill", "Send a signal to containers");
  kill->add_option("-s,--signal", *signal_name, "Signal name or number")->capture_default_str();
  kill->add_option("containers", *ids, "Containers")->required();
  kill->callback(
      [&context, exit_code, ids, signal_name] { *exit_code = Kill(context, *ids, *signal_name); });

  CLI::App* wait = app.add_subcommand("wait", "Wait for containers to exit; print exit codes");
  wait->add_option("containers", *ids, "Containers")->required();
  wait->callback([&context, exit_code, ids] { *exit_code = Wait(context, *ids); });

  auto stop_timeout = std::make_shared<int>(-1);
  CLI::App* stop = app.add_subcommand("stop", "Stop containers: stop signal, then SIGKILL");
  stop->add_option("-t,--time", *stop_timeout,
                   "Seconds to wait before SIGKILL (default: the container's, 10)");
  stop->add_option("containers", *ids, "Containers")->required();
  stop->callback([&context, exit_code, ids, stop_timeout] {
    *exit_code = Stop(context, *ids, *stop_timeout);
  });

  CLI::App* pause = app.add_subcommand("pause", "Freeze all processes of containers");
  pause->add_option("containers", *ids, "Containers")->required();
  pause->callback([&context, exit_code, ids] { *exit_code = PauseOrUnpause(context, *ids, true); });
  CLI::App* unpause = app.add_subcommand("unpause", "Thaw paused containers");
  unpause->add_option("containers", *ids, "Containers")->required();
  unpause->callback(
      [&context, exit_code, ids] { *exit_code = PauseOrUnpause(context, *ids, false); });

  auto exec_options = std::make_shared<ExecOptions>();
  CLI::App* exec = app.add_subcommand("exec", "Run a command in a running container");
  exec->add_flag("-t,--tty", exec_options->tty, "Allocate a terminal");
  exec->add_flag("-i,--interactive", exec_options->interactive, "Keep stdin open and send it");
  exec->add_option("-e,--env", exec_options->env, "Set an environment variable")
      ->take_all()
      ->allow_extra_args(false);
  exec->add_option("-w,--workdir", exec_options->workdir, "Working directory");
  exec->add_option("-u,--user", exec_options->user, "uid[:gid] or name[:group]");
  exec->add_flag("--privileged", exec_options->privileged, "All capabilities, no seccomp");
  exec->prefix_command();
  exec->callback([&context, exit_code, exec_options, exec] {
    *exit_code = Exec(context, *exec_options, exec->remaining());
  });

  auto attach_id = std::make_shared<std::string>();
  auto attach_keys = std::make_shared<std::string>(kDefaultDetachKeys);
  CLI::App* attach = app.add_subcommand("attach", "Attach to a running container's stdio");
  attach->add_option("container", *attach_id, "Container")->required();
  attach->add_option("--detach-keys", *attach_keys, "Keys that detach (Docker's syntax)")
      ->capture_default_str();
  attach->callback([&context, exit_code, attach_id, attach_keys] {
    auto keys = ParseDetachKeys(*attach_keys);
    if (!keys.ok()) {
      PrintError(std::string(keys.status().message()));
      *exit_code = kExitRunError;
      return;
    }
    v1::GetContainerRequest request;
    request.set_id(*attach_id);
    v1::GetContainerResponse response;
    auto get_context = CliContext::Deadline();
    grpc::Status status = context.Runtime()->GetContainer(get_context.get(), request, &response);
    if (!status.ok()) {
      PrintError(absl::StrCat("attach ", *attach_id), status, "runtime");
      *exit_code = kExitFailure;
      return;
    }
    *exit_code = AttachTo(context, response.container().id(), response.container().spec().tty(),
                          response.container().spec().stdin_open(), *keys);
    if (*exit_code == kDetached) *exit_code = 0;
  });

  auto force = std::make_shared<bool>(false);
  CLI::App* rm = app.add_subcommand("rm", "Remove containers");
  rm->add_flag("-f,--force", *force, "Kill running containers first");
  rm->add_option("containers", *ids, "Containers")->required();
  rm->callback([&context, exit_code, ids, force] { *exit_code = Remove(context, *ids, *force); });
}

}  // namespace nodeagent::nodectl
