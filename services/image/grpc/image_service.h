#pragma once

// nodeagent.v1.ImageService: a thin adapter over ImageStore. Requests become core calls,
// core errors become gRPC codes here and nowhere else.

#include <grpcpp/grpcpp.h>

#include "nodeagent/v1/image.grpc.pb.h"
#include "services/image/core/image_store.h"
#include "services/image/core/registry_auth.h"
#include "services/image/core/registry_client.h"

namespace nodeagent::image {

class ImageServiceImpl final : public v1::ImageService::Service {
 public:
  // `store` is not owned and must outlive the service.
  // Registry credentials are kept in <store root>/auth.json.
  explicit ImageServiceImpl(ImageStore* store)
      : store_(store), credentials_(store->root() + "/auth.json") {}

  grpc::Status ListImages(grpc::ServerContext* context, const v1::ListImagesRequest* request,
                          v1::ListImagesResponse* response) override;
  grpc::Status GetImage(grpc::ServerContext* context, const v1::GetImageRequest* request,
                        v1::GetImageResponse* response) override;
  grpc::Status ImportImage(grpc::ServerContext* context,
                           grpc::ServerReader<v1::ImportImageRequest>* reader,
                           v1::ImportImageResponse* response) override;
  grpc::Status PrepareSnapshot(grpc::ServerContext* context,
                               const v1::PrepareSnapshotRequest* request,
                               v1::PrepareSnapshotResponse* response) override;
  grpc::Status RemoveSnapshot(grpc::ServerContext* context,
                              const v1::RemoveSnapshotRequest* request,
                              v1::RemoveSnapshotResponse* response) override;
  grpc::Status ListSnapshots(grpc::ServerContext* context, const v1::ListSnapshotsRequest* request,
                             v1::ListSnapshotsResponse* response) override;

  grpc::Status TagImage(grpc::ServerContext* context, const v1::TagImageRequest* request,
                        v1::TagImageResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context, const v1::RemoveImageRequest* request,
                           v1::RemoveImageResponse* response) override;
  grpc::Status UnpackImage(grpc::ServerContext* context, const v1::UnpackImageRequest* request,
                           v1::UnpackImageResponse* response) override;
  grpc::Status LoadImage(grpc::ServerContext* context,
                         grpc::ServerReader<v1::LoadImageRequest>* reader,
                         v1::LoadImageResponse* response) override;
  grpc::Status SaveImage(grpc::ServerContext* context, const v1::SaveImageRequest* request,
                         grpc::ServerWriter<v1::SaveImageResponse>* writer) override;
  grpc::Status PullImage(grpc::ServerContext* context, const v1::PullImageRequest* request,
                         grpc::ServerWriter<v1::PullImageResponse>* writer) override;
  grpc::Status PushImage(grpc::ServerContext* context, const v1::PushImageRequest* request,
                         grpc::ServerWriter<v1::PushImageResponse>* writer) override;
  grpc::Status DiffSnapshot(grpc::ServerContext* context, const v1::DiffSnapshotRequest* request,
                            v1::DiffSnapshotResponse* response) override;
  grpc::Status CommitSnapshot(grpc::ServerContext* context,
                              const v1::CommitSnapshotRequest* request,
                              v1::CommitSnapshotResponse* response) override;
  grpc::Status ExportSnapshot(grpc::ServerContext* context,
                              const v1::ExportSnapshotRequest* request,
                              grpc::ServerWriter<v1::ExportSnapshotResponse>* writer) override;
  grpc::Status ImageHistory(grpc::ServerContext* context, const v1::ImageHistoryRequest* request,
                            v1::ImageHistoryResponse* response) override;
  grpc::Status PruneImages(grpc::ServerContext* context, const v1::PruneImagesRequest* request,
                           v1::PruneImagesResponse* response) override;
  grpc::Status GetDiskUsage(grpc::ServerContext* context, const v1::GetDiskUsageRequest* request,
                            v1::GetDiskUsageResponse* response) override;
  grpc::Status Login(grpc::ServerContext* context, const v1::LoginRequest* request,
                     v1::LoginResponse* response) override;
  grpc::Status Logout(grpc::ServerContext* context, const v1::LogoutRequest* request,
                      v1::LogoutResponse* response) override;

 private:
  // Registry options from a request, with the saved credentials to look up.
  RegistryOptions Access(const v1::RegistryAccess& access) const;

  ImageStore* const store_;
  CredentialStore credentials_;
};

}  // namespace nodeagent::image
