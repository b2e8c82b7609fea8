#pragma once

// The gRPC face of the runtime: a thin adapter over ContainerManager.

#include "nodeagent/v1/runtime.grpc.pb.h"
#include "services/runtime/core/container_manager.h"

namespace nodeagent::runtime {

class RuntimeServiceImpl final : public v1::RuntimeService::Service {
 public:
  explicit RuntimeServiceImpl(ContainerManager* manager) : manager_(manager) {}

  grpc::Status CreateContainer(grpc::ServerContext* context,
                               const v1::CreateContainerRequest* request,
                               v1::CreateContainerResponse* response) override;
  grpc::Status StartContainer(grpc::ServerContext* context,
                              const v1::StartContainerRequest* request,
                              v1::StartContainerResponse* response) override;
  grpc::Status RunContainer(grpc::ServerContext* context, const v1::RunContainerRequest* request,
                            grpc::ServerWriter<v1::RunContainerResponse>* writer) override;
  grpc::Status ListContainers(grpc::ServerContext* context,
                              const v1::ListContainersRequest* request,
                              v1::ListContainersResponse* response) override;
  grpc::Status GetContainer(grpc::ServerContext* context, const v1::GetContainerRequest* request,
                            v1::GetContainerResponse* response) override;
  grpc::Status KillContainer(grpc::ServerContext* context, const v1::KillContainerRequest* request,
                             v1::KillContainerResponse* response) override;
  grpc::Status WaitContainer(grpc::ServerContext* context, const v1::WaitContainerRequest* request,
                             v1::WaitContainerResponse* response) override;
  grpc::Status RemoveContainer(grpc::ServerContext* context,
                               const v1::RemoveContainerRequest* request,
                               v1::RemoveContainerResponse* response) override;
  grpc::Status ContainerLogs(grpc::ServerContext* context, const v1::ContainerLogsRequest* request,
                             grpc::ServerWriter<v1::ContainerLogsResponse>* writer) override;

  // Later issues: these answer UNIMPLEMENTED with a message saying so.
  grpc::Status StopContainer(grpc::ServerContext* context, const v1::StopContainerRequest* request,
                             v1::StopContainerResponse* response) override;
  grpc::Status PauseContainer(grpc::ServerContext* context,
                              const v1::PauseContainerRequest* request,
                              v1::PauseContainerResponse* response) override;
  grpc::Status ResumeContainer(grpc::ServerContext* context,
                               const v1::ResumeContainerRequest* request,
                               v1::ResumeContainerResponse* response) override;
  grpc::Status AttachContainer(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AttachContainerResponse, v1::AttachContainerRequest>* stream)
      override;
  grpc::Status ExecContainer(grpc::ServerContext* context,
                             grpc::ServerReaderWriter<v1::ExecContainerResponse,
                                                      v1::ExecContainerRequest>* stream) override;
  grpc::Status ListNamespaces(grpc::ServerContext* context,
                              const v1::ListNamespacesRequest* request,
                              v1::ListNamespacesResponse* response) override;
  grpc::Status ListMounts(grpc::ServerContext* context, const v1::ListMountsRequest* request,
                          v1::ListMountsResponse* response) override;
  grpc::Status CreateVolume(grpc::ServerContext* context, const v1::CreateVolumeRequest* request,
                            v1::CreateVolumeResponse* response) override;
  grpc::Status ListVolumes(grpc::ServerContext* context, const v1::ListVolumesRequest* request,
                           v1::ListVolumesResponse* response) override;
  grpc::Status RemoveVolume(grpc::ServerContext* context, const v1::RemoveVolumeRequest* request,
                            v1::RemoveVolumeResponse* response) override;
  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::WatchEventsResponse>* writer) override;

 private:
  ContainerManager* const manager_;
};

}  // namespace nodeagent::runtime
