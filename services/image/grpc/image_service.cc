#include "services/image/grpc/image_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/grpc/status_convert.h"
#include "services/image/grpc/conversions.h"

namespace nodeagent::image {
namespace {

grpc::Status NotYet(absl::string_view rpc, absl::string_view later_work) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat(rpc, ": not implemented yet (", later_work, " is issue 4)"));
}

}  // namespace

grpc::Status ImageServiceImpl::ListImages(grpc::ServerContext* /*context*/,
                                          const v1::ListImagesRequest* /*request*/,
                                          v1::ListImagesResponse* response) {
  for (const Image& image : store_->ListImages()) ToProto(image, response->add_images());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::GetImage(grpc::ServerContext* /*context*/,
                                        const v1::GetImageRequest* request,
                                        v1::GetImageResponse* response) {
  absl::StatusOr<Image> image = store_->GetImage(request->ref());
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, response->mutable_image());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::ImportImage(grpc::ServerContext* context,
                                           grpc::ServerReader<v1::ImportImageRequest>* reader,
                                           v1::ImportImageResponse* response) {
  v1::ImportImageRequest message;
  if (!reader->Read(&message) || !message.has_metadata()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "import: the first message must carry the metadata (name, config)");
  }
  const v1::ImportImageMetadata metadata = message.metadata();
  // The chunk handed to the store lives in `message` until the next Read.
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    while (reader->Read(&message)) {
      if (message.has_metadata()) {
        return absl::InvalidArgumentError("metadata may only come in the first message");
      }
      if (!message.chunk().empty()) return absl::string_view(message.chunk());
    }
    // A cancelled upload also ends the stream: it must not pass for a complete tarball.
    if (context->IsCancelled()) return absl::CancelledError("the client cancelled the upload");
    return absl::string_view();
  };
  absl::StatusOr<Image> image =
      store_->ImportRootfsTar(metadata.name(), FromProto(metadata.config()), source);
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, response->mutable_image());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::PrepareSnapshot(grpc::ServerContext* /*context*/,
                                               const v1::PrepareSnapshotRequest* request,
                                               v1::PrepareSnapshotResponse* response) {
  absl::StatusOr<PreparedSnapshot> prepared =
      store_->PrepareSnapshot(request->key(), request->image());
  if (!prepared.ok()) return ToGrpcStatus(prepared.status());
  ToProto(*prepared, response);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::RemoveSnapshot(grpc::ServerContext* /*context*/,
                                              const v1::RemoveSnapshotRequest* request,
                                              v1::RemoveSnapshotResponse* /*response*/) {
  return ToGrpcStatus(store_->RemoveSnapshot(request->key()));
}

grpc::Status ImageServiceImpl::ListSnapshots(grpc::ServerContext* /*context*/,
                                             const v1::ListSnapshotsRequest* /*request*/,
                                             v1::ListSnapshotsResponse* response) {
  for (const Snapshot& snapshot : store_->ListSnapshots()) {
    ToProto(snapshot, response->add_snapshots());
  }
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::TagImage(grpc::ServerContext*, const v1::TagImageRequest*,
                                        v1::TagImageResponse*) {
  return NotYet("TagImage", "tagging");
}

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext*, const v1::RemoveImageRequest*,
                                           v1::RemoveImageResponse*) {
  return NotYet("RemoveImage", "image removal");
}

grpc::Status ImageServiceImpl::LoadImage(grpc::ServerContext*,
                                         grpc::ServerReader<v1::LoadImageRequest>*,
                                         v1::LoadImageResponse*) {
  return NotYet("LoadImage", "loading OCI and docker-save archives");
}

grpc::Status ImageServiceImpl::SaveImage(grpc::ServerContext*, const v1::SaveImageRequest*,
                                         grpc::ServerWriter<v1::SaveImageResponse>*) {
  return NotYet("SaveImage", "saving OCI archives");
}

grpc::Status ImageServiceImpl::PullImage(grpc::ServerContext*, const v1::PullImageRequest*,
                                         grpc::ServerWriter<v1::PullImageResponse>*) {
  return NotYet("PullImage", "registry pull/push");
}

grpc::Status ImageServiceImpl::PushImage(grpc::ServerContext*, const v1::PushImageRequest*,
                                         grpc::ServerWriter<v1::PushImageResponse>*) {
  return NotYet("PushImage", "registry pull/push");
}

grpc::Status ImageServiceImpl::DiffSnapshot(grpc::ServerContext*, const v1::DiffSnapshotRequest*,
                                            v1::DiffSnapshotResponse*) {
  return NotYet("DiffSnapshot", "snapshot diff");
}

grpc::Status ImageServiceImpl::CommitSnapshot(grpc::ServerContext*,
                                              const v1::CommitSnapshotRequest*,
                                              v1::CommitSnapshotResponse*) {
  return NotYet("CommitSnapshot", "snapshot commit");
}

grpc::Status ImageServiceImpl::ExportSnapshot(grpc::ServerContext*,
                                              const v1::ExportSnapshotRequest*,
                                              grpc::ServerWriter<v1::ExportSnapshotResponse>*) {
  return NotYet("ExportSnapshot", "snapshot export");
}

grpc::Status ImageServiceImpl::ImageHistory(grpc::ServerContext*, const v1::ImageHistoryRequest*,
                                            v1::ImageHistoryResponse*) {
  return NotYet("ImageHistory", "image history");
}

grpc::Status ImageServiceImpl::PruneImages(grpc::ServerContext*, const v1::PruneImagesRequest*,
                                           v1::PruneImagesResponse*) {
  return NotYet("PruneImages", "garbage collection");
}

}  // namespace nodeagent::image
