#include "services/runtime/grpc/runtime_service.h"

#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "services/common/grpc/status_convert.h"
#include "services/common/log.h"
#include "services/runtime/grpc/convert.h"
#include "services/runtime/linux/exec_lookup.h"

namespace nodeagent::runtime {

grpc::Status RuntimeServiceImpl::CreateContainer(grpc::ServerContext*,
                                                 const v1::CreateContainerRequest* request,
                                                 v1::CreateContainerResponse* response) {
  auto record = manager_->Create(request->name(), ConfigFromProto(request->spec()));
  if (!record.ok()) return ToGrpcStatus(record.status());
  ContainerToProto(*record, response->mutable_container());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::StartContainer(grpc::ServerContext*,
                                                const v1::StartContainerRequest* request,
                                                v1::StartContainerResponse* response) {
  auto record = manager_->Start(request->id());
  if (!record.ok()) return ToGrpcStatus(record.status());
  ContainerToProto(*record, response->mutable_container());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::RunContainer(
    grpc::ServerContext* context, const v1::RunContainerRequest* request,
    grpc::ServerWriter<v1::RunContainerResponse>* writer) {
  auto created = manager_->Create(request->name(), ConfigFromProto(request->spec()));
  if (!created.ok()) return ToGrpcStatus(created.status());
  const std::string id = created->id;
  // Held until the exit status is read: an auto-remove must not take the log away first.
  if (absl::Status held = manager_->Hold(id); !held.ok()) return ToGrpcStatus(held);
  absl::Cleanup release = [this, &id] {
    if (absl::Status s = manager_->Release(id); !s.ok() && !absl::IsNotFound(s)) {
      LogWarning("release %s: %s", id.substr(0, 12), s.ToString());
    }
  };
  auto cancelled = [context] { return context->IsCancelled(); };

  auto started = manager_->Start(id);
  if (!started.ok()) {
    // The container exists but its process could not start: report it like an exit, with
    // Docker's 125/126/127, so the client can tell this from a failure of the service.
    auto record = manager_->Get(id);
    if (!record.ok()) return ToGrpcStatus(started.status());
    std::move(release).Invoke();
    v1::RunContainerResponse response;
    ExitToProto(record->exit, started.status().message(), response.mutable_exit());
    writer->Write(response);
    return grpc::Status::OK;
  }
  {
    v1::RunContainerResponse response;
    ContainerToProto(*started, response.mutable_started());
    writer->Write(response);
  }
  absl::Status streamed = manager_->StreamOutput(
      id, /*follow=*/true, /*tail=*/0,
      [writer](const LogRecord& record) {
        v1::RunContainerResponse response;
        OutputToProto(record, response.mutable_output());
        return writer->Write(response);
      },
      cancelled);
  if (!streamed.ok()) return ToGrpcStatus(streamed);
  auto exit = manager_->Wait(id, cancelled);
  if (!exit.ok()) return ToGrpcStatus(exit.status());
  // With --rm, the container is gone before the client hears the exit status.
  std::move(release).Invoke();
  v1::RunContainerResponse response;
  ExitToProto(*exit, "", response.mutable_exit());
  writer->Write(response);
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListContainers(grpc::ServerContext*,
                                                const v1::ListContainersRequest* request,
                                                v1::ListContainersResponse* response) {
  for (const ContainerRecord& record : manager_->List(request->all())) {
    ContainerToProto(record, response->add_containers());
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::GetContainer(grpc::ServerContext*,
                                              const v1::GetContainerRequest* request,
                                              v1::GetContainerResponse* response) {
  auto record = manager_->Get(request->id());
  if (!record.ok()) return ToGrpcStatus(record.status());
  ContainerToProto(*record, response->mutable_container());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::KillContainer(grpc::ServerContext*,
                                               const v1::KillContainerRequest* request,
                                               v1::KillContainerResponse*) {
  int signal = request->signal() == 0 ? 9 : request->signal();
  return ToGrpcStatus(manager_->Kill(request->id(), signal));
}

grpc::Status RuntimeServiceImpl::WaitContainer(grpc::ServerContext* context,
                                               const v1::WaitContainerRequest* request,
                                               v1::WaitContainerResponse* response) {
  auto exit = manager_->Wait(request->id(), [context] { return context->IsCancelled(); });
  if (!exit.ok()) return ToGrpcStatus(exit.status());
  ExitToProto(*exit, "", response->mutable_exit());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::RemoveContainer(grpc::ServerContext*,
                                                 const v1::RemoveContainerRequest* request,
                                                 v1::RemoveContainerResponse*) {
  return ToGrpcStatus(manager_->Remove(request->id(), request->force()));
}

grpc::Status RuntimeServiceImpl::ContainerLogs(
    grpc::ServerContext* context, const v1::ContainerLogsRequest* request,
    grpc::ServerWriter<v1::ContainerLogsResponse>* writer) {
  if (request->tail() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "tail must not be negative");
  }
  return ToGrpcStatus(manager_->StreamOutput(
      request->id(), request->follow(), request->tail(),
      [writer](const LogRecord& record) {
        v1::ContainerLogsResponse response;
        OutputToProto(record, response.mutable_output());
        return writer->Write(response);
      },
      [context] { return context->IsCancelled(); }));
}

grpc::Status RuntimeServiceImpl::StopContainer(grpc::ServerContext*,
                                               const v1::StopContainerRequest* request,
                                               v1::StopContainerResponse*) {
  return ToGrpcStatus(manager_->Stop(request->id(), request->timeout_seconds()));
}
grpc::Status RuntimeServiceImpl::PauseContainer(grpc::ServerContext*,
                                                const v1::PauseContainerRequest* request,
                                                v1::PauseContainerResponse*) {
  return ToGrpcStatus(manager_->Pause(request->id()));
}
grpc::Status RuntimeServiceImpl::ResumeContainer(grpc::ServerContext*,
                                                 const v1::ResumeContainerRequest* request,
                                                 v1::ResumeContainerResponse*) {
  return ToGrpcStatus(manager_->Resume(request->id()));
}
namespace {

// Pumps a shim's attach socket to a gRPC stream (output, then the exit as the last message)
// and the client's input, terminal size and close-stdin back, until the exit or either side
// ends. Attach and exec carry the same fields in differently named messages.
template <typename Request, typename Response>
grpc::Status PumpAttachSession(grpc::ServerContext* context,
                               grpc::ServerReaderWriter<Response, Request>* stream,
                               AttachSession* attach, const Request& first) {
  auto forward = [attach](const Request& request) {
    if (request.rows() > 0 && request.cols() > 0) {
      (void)attach->Resize(static_cast<uint16_t>(request.rows()),
                           static_cast<uint16_t>(request.cols()));
    }
    if (!request.stdin().empty()) (void)attach->Send(kAttachStdin, request.stdin());
    if (request.close_stdin()) (void)attach->Send(kAttachCloseStdin, "");
  };
  forward(first);
  // Input runs beside the output loop; it ends when the client half-closes or the call ends.
  std::thread input([stream, &forward] {
    Request request;
    while (stream->Read(&request)) forward(request);
  });
  grpc::Status result = grpc::Status::OK;
  while (true) {
    auto frame = attach->Receive();
    if (!frame.ok()) {
      result = ToGrpcStatus(frame.status());
      break;
    }
    if (!frame->has_value()) break;
    Response response;
    const AttachFrame& f = **frame;
    if (f.type == kAttachStdout || f.type == kAttachStderr) {
      v1::OutputChunk* out = response.mutable_output();
      out->set_stream(f.type == kAttachStdout ? v1::OutputChunk::STREAM_STDOUT
                                              : v1::OutputChunk::STREAM_STDERR);
      out->set_data(f.payload);
    } else if (f.type == kAttachExit) {
      auto exit = ParseExitRecord(f.payload);
      if (exit.ok()) ExitToProto(*exit, "", response.mutable_exit());
    } else {
      continue;
    }
    if (!stream->Write(response) || f.type == kAttachExit) break;
  }
  attach->Shutdown();
  context->TryCancel();  // Unblocks the input thread's Read.
  input.join();
  return result;
}

}  // namespace

grpc::Status RuntimeServiceImpl::AttachContainer(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AttachContainerResponse, v1::AttachContainerRequest>* stream) {
  v1::AttachContainerRequest first;
  if (!stream->Read(&first)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "attach: no request");
  }
  auto session = manager_->Attach(first.id());
  if (!session.ok()) return ToGrpcStatus(session.status());
  return PumpAttachSession(context, stream, session->get(), first);
}

grpc::Status RuntimeServiceImpl::ExecContainer(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ExecContainerResponse, v1::ExecContainerRequest>* stream) {
  v1::ExecContainerRequest first;
  if (!stream->Read(&first)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "exec: no request");
  }
  ShimExecProcess process;
  process.args.assign(first.args().begin(), first.args().end());
  process.cwd = first.working_dir();
  process.user = first.user();
  process.tty = first.tty();
  process.stdin_open = first.stdin_open();
  process.tty_rows = static_cast<uint16_t>(first.rows());
  process.tty_cols = static_cast<uint16_t>(first.cols());
  process.privileged = first.privileged();
  if (!first.env().empty()) {
    // The shim takes the whole environment: the container's, then these on top.
    auto record = manager_->Get(first.id());
    if (!record.ok()) return ToGrpcStatus(record.status());
    ContainerConfig overlay;
    overlay.image = record->config.image;
    overlay.args = record->process_args;
    overlay.env.assign(first.env().begin(), first.env().end());
    ImageRunDefaults base;
    base.env = record->process_env;
    auto resolved = ResolveProcess(overlay, base, record->config.hostname);
    if (!resolved.ok()) return ToGrpcStatus(resolved.status());
    process.env = resolved->env;
  }
  auto session = manager_->StartExec(first.id(), process);
  if (!session.ok()) {
    if (IsExecError(session.status())) {
      // Like `docker exec`: the process could not start; report it as its exit.
      v1::ExecContainerResponse response;
      ExitRecord exit;
      exit.exit_code = StartErrorExitCode(session.status());
      ExitToProto(exit, session.status().message(), response.mutable_exit());
      stream->Write(response);
      return grpc::Status::OK;
    }
    return ToGrpcStatus(session.status());
  }
  grpc::Status result = PumpAttachSession(context, stream, session->attach.get(), first);
  manager_->FinishExec(*session);
  return result;
}
grpc::Status RuntimeServiceImpl::ListNamespaces(grpc::ServerContext*,
                                                const v1::ListNamespacesRequest* request,
                                                v1::ListNamespacesResponse* response) {
  int pid = request->pid();
  if (request->target_case() == v1::ListNamespacesRequest::kContainer) {
    auto live = manager_->LivePid(request->container());
    if (!live.ok()) return ToGrpcStatus(live.status());
    pid = *live;
  } else if (pid <= 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "give a container or a PID greater than 0");
  }
  auto namespaces = ReadNamespaces(pid);
  if (!namespaces.ok()) return ToGrpcStatus(namespaces.status());
  auto host = ReadOwnNamespaces();
  response->set_pid(pid);
  for (const NamespaceInode& ns : *namespaces) {
    v1::Namespace* out = response->add_namespaces();
    out->set_type(ns.type);
    out->set_inode(ns.inode);
    if (host.ok()) {
      for (const NamespaceInode& h : *host) {
        if (h.type == ns.type && h.inode == ns.inode) out->set_shared_with_host(true);
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListMounts(grpc::ServerContext*,
                                            const v1::ListMountsRequest* request,
                                            v1::ListMountsResponse* response) {
  auto mounts = manager_->Mounts(request->container());
  if (!mounts.ok()) return ToGrpcStatus(mounts.status());
  for (const MountInfoEntry& m : *mounts) {
    v1::MountInfo* out = response->add_mounts();
    out->set_target(m.target);
    out->set_source(m.source);
    out->set_fstype(m.fstype);
    out->set_options(m.options);
    out->set_propagation(m.propagation);
    out->set_id(m.id);
    out->set_parent_id(m.parent_id);
    out->set_root(m.root);
  }
  return grpc::Status::OK;
}
namespace {
void VolumeToProto(const ContainerManager::VolumeInfo& volume, v1::Volume* out) {
  out->set_name(volume.name);
  out->set_path(volume.path);
  out->set_size_bytes(volume.size_bytes);
  for (const std::string& user : volume.used_by) out->add_used_by(user);
}
}  // namespace

grpc::Status RuntimeServiceImpl::CreateVolume(grpc::ServerContext*,
                                              const v1::CreateVolumeRequest* request,
                                              v1::CreateVolumeResponse* response) {
  auto volume = manager_->CreateVolume(request->name());
  if (!volume.ok()) return ToGrpcStatus(volume.status());
  VolumeToProto(*volume, response->mutable_volume());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::ListVolumes(grpc::ServerContext*, const v1::ListVolumesRequest*,
                                             v1::ListVolumesResponse* response) {
  auto volumes = manager_->ListVolumes();
  if (!volumes.ok()) return ToGrpcStatus(volumes.status());
  for (const auto& volume : *volumes) VolumeToProto(volume, response->add_volumes());
  return grpc::Status::OK;
}

grpc::Status RuntimeServiceImpl::RemoveVolume(grpc::ServerContext*,
                                              const v1::RemoveVolumeRequest* request,
                                              v1::RemoveVolumeResponse*) {
  return ToGrpcStatus(manager_->RemoveVolume(request->name()));
}

grpc::Status RuntimeServiceImpl::WatchEvents(grpc::ServerContext* context,
                                             const v1::WatchEventsRequest* request,
                                             grpc::ServerWriter<v1::WatchEventsResponse>* writer) {
  std::unique_ptr<EventHub::Subscription> events = manager_->Watch(request->include_existing());
  while (!context->IsCancelled()) {
    auto event = events->Next(absl::Milliseconds(500));
    if (!event.ok()) return ToGrpcStatus(event.status());
    if (!event->has_value()) continue;
    v1::WatchEventsResponse response;
    response.set_type((*event)->type);
    response.set_timestamp_unix_nanos((*event)->unix_nanos);
    ContainerToProto((*event)->container, response.mutable_container());
    if (!writer->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace nodeagent::runtime
