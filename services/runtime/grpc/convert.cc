#include "services/runtime/grpc/convert.h"

namespace nodeagent::runtime {
namespace {

v1::ContainerState StateToProto(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return v1::CONTAINER_STATE_CREATED;
    case ContainerState::kRunning:
      return v1::CONTAINER_STATE_RUNNING;
    case ContainerState::kPaused:
      return v1::CONTAINER_STATE_PAUSED;
    case ContainerState::kExited:
      return v1::CONTAINER_STATE_EXITED;
  }
  return v1::CONTAINER_STATE_UNSPECIFIED;
}

}  // namespace

std::vector<IdMapping> IdMappingsFromProto(
    const google::protobuf::RepeatedPtrField<v1::IdMapping>& mappings) {
  std::vector<IdMapping> out;
  out.reserve(mappings.size());
  for (const v1::IdMapping& m : mappings) out.push_back({m.container_id(), m.host_id(), m.size()});
  return out;
}

void IdMappingsToProto(const std::vector<IdMapping>& mappings,
                       google::protobuf::RepeatedPtrField<v1::IdMapping>* out) {
  for (const IdMapping& m : mappings) {
    v1::IdMapping* p = out->Add();
    p->set_container_id(m.container_id);
    p->set_host_id(m.host_id);
    p->set_size(m.size);
  }
}

ContainerConfig ConfigFromProto(const v1::ContainerSpec& spec) {
  ContainerConfig c;
  c.image = spec.image();
  c.args.assign(spec.args().begin(), spec.args().end());
  c.env.assign(spec.env().begin(), spec.env().end());
  c.working_dir = spec.working_dir();
  c.hostname = spec.hostname();
  for (const v1::Mount& m : spec.mounts()) {
    c.mounts.push_back({m.type(), m.source(), m.destination(),
                        std::vector<std::string>(m.options().begin(), m.options().end())});
  }
  c.limits.memory_bytes = spec.resources().memory_bytes();
  c.limits.cpu_quota_us = spec.resources().cpu_quota_us();
  c.limits.cpu_period_us = spec.resources().cpu_period_us();
  c.limits.pids_limit = spec.resources().pids_limit();
  c.limits.cpuset_cpus = spec.resources().cpuset_cpus();
  c.network_mode = spec.network().mode();
  for (const v1::PortMapping& p : spec.network().ports()) {
    c.ports.push_back({p.host_ip(), p.host_port(), p.container_port(),
                       p.protocol().empty() ? "tcp" : p.protocol()});
  }
  c.labels.insert(spec.labels().begin(), spec.labels().end());
  c.tty = spec.tty();
  c.stdin_open = spec.stdin_open();
  c.auto_remove = spec.auto_remove();
  c.read_only_rootfs = spec.read_only_rootfs();
  c.init = spec.init();
  c.user = spec.user();
  c.cap_add.assign(spec.cap_add().begin(), spec.cap_add().end());
  c.cap_drop.assign(spec.cap_drop().begin(), spec.cap_drop().end());
  c.privileged = spec.privileged();
  c.seccomp_profile = spec.seccomp_profile();
  c.userns.mode = spec.userns().mode();
  c.userns.uid_mappings = IdMappingsFromProto(spec.userns().uid_mappings());
  c.userns.gid_mappings = IdMappingsFromProto(spec.userns().gid_mappings());
  c.ipc_mode = spec.ipc_mode();
  c.pid_mode = spec.pid_mode();
  c.init_prompt = spec.init_prompt();
  c.stop_signal = spec.stop_signal();
  c.stop_timeout_seconds = spec.stop_timeout_seconds();
  return c;
}

void ConfigToProto(const ContainerConfig& c, v1::ContainerSpec* spec) {
  spec->set_image(c.image);
  for (const std::string& a : c.args) spec->add_args(a);
  for (const std::string& e : c.env) spec->add_env(e);
  spec->set_working_dir(c.working_dir);
  spec->set_hostname(c.hostname);
  for (const MountSpec& m : c.mounts) {
    v1::Mount* out = spec->add_mounts();
    out->set_type(m.type);
    out->set_source(m.source);
    out->set_destination(m.destination);
    for (const std::string& o : m.options) out->add_options(o);
  }
  v1::Resources* r = spec->mutable_resources();
  r->set_memory_bytes(c.limits.memory_bytes);
  r->set_cpu_quota_us(c.limits.cpu_quota_us);
  r->set_cpu_period_us(c.limits.cpu_period_us);
  r->set_pids_limit(c.limits.pids_limit);
  r->set_cpuset_cpus(c.limits.cpuset_cpus);
  spec->mutable_network()->set_mode(c.network_mode);
  for (const PublishedPort& p : c.ports) {
    v1::PortMapping* out = spec->mutable_network()->add_ports();
    out->set_host_ip(p.host_ip);
    out->set_host_port(p.host_port);
    out->set_container_port(p.container_port);
    out->set_protocol(p.protocol);
  }
  spec->mutable_labels()->insert(c.labels.begin(), c.labels.end());
  spec->set_tty(c.tty);
  spec->set_stdin_open(c.stdin_open);
  spec->set_auto_remove(c.auto_remove);
  spec->set_read_only_rootfs(c.read_only_rootfs);
  spec->set_init(c.init);
  spec->set_user(c.user);
  for (const std::string& cap : c.cap_add) spec->add_cap_add(cap);
  for (const std::string& cap : c.cap_drop) spec->add_cap_drop(cap);
  spec->set_privileged(c.privileged);
  spec->set_seccomp_profile(c.seccomp_profile);
  spec->mutable_userns()->set_mode(c.userns.mode);
  IdMappingsToProto(c.userns.uid_mappings, spec->mutable_userns()->mutable_uid_mappings());
  IdMappingsToProto(c.userns.gid_mappings, spec->mutable_userns()->mutable_gid_mappings());
  spec->set_ipc_mode(c.ipc_mode);
  spec->set_pid_mode(c.pid_mode);
  spec->set_init_prompt(c.init_prompt);
  spec->set_stop_signal(c.stop_signal);
  spec->set_stop_timeout_seconds(c.stop_timeout_seconds);
}

void ContainerToProto(const ContainerRecord& r, v1::Container* out) {
  out->set_id(r.id);
  out->set_name(r.name);
  ConfigToProto(r.config, out->mutable_spec());
  out->set_state(StateToProto(r.state));
  out->set_pid(r.pid);
  out->set_exit_code(r.exit.exit_code);
  out->set_oom_killed(r.exit.oom_killed);
  out->set_created_unix_nanos(r.created_unix_nanos);
  out->set_started_unix_nanos(r.started_unix_nanos);
  out->set_finished_unix_nanos(r.exit.finished_unix_nanos);
  out->set_image_id(r.image_id);
  out->set_cgroup_path(r.cgroup_path);
  if (r.network) {
    v1::ContainerNetworkSettings* n = out->mutable_network_settings();
    n->set_network(r.network->network);
    n->set_ip_address(r.network->ip_address);
    n->set_prefix_length(r.network->prefix_length);
    n->set_gateway(r.network->gateway);
    n->set_mac_address(r.network->mac_address);
    n->set_netns_path(r.network->netns_path);
  }
}

void ExitToProto(const ExitRecord& exit, absl::string_view error, v1::ExitStatus* out) {
  out->set_exit_code(exit.exit_code);
  out->set_signal(exit.signal);
  out->set_oom_killed(exit.oom_killed);
  out->set_finished_unix_nanos(exit.finished_unix_nanos);
  out->set_error(std::string(error));
}

void OutputToProto(const LogRecord& record, v1::OutputChunk* out) {
  out->set_stream(record.stream == OutputStream::kStdout ? v1::OutputChunk::STREAM_STDOUT
                                                         : v1::OutputChunk::STREAM_STDERR);
  out->set_data(record.data);
  out->set_timestamp_unix_nanos(record.unix_nanos);
}

}  // namespace nodeagent::runtime
