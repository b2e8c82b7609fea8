#include "services/image/grpc/image_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/grpc/status_convert.h"
#include "services/common/log.h"
#include "services/image/core/registry.h"
#include "services/image/grpc/conversions.h"

namespace nodeagent::image {
namespace {

// Gathers a byte stream into messages of up to 1 MiB (libarchive writes 10 KiB blocks).
template <typename Response>
class ChunkedSink {
 public:
  explicit ChunkedSink(grpc::ServerWriter<Response>* writer) : writer_(writer) {}

  ByteSink sink() {
    return [this](absl::string_view data) -> absl::Status {
      buffer_.append(data.data(), data.size());
      if (buffer_.size() >= kChunk) return Flush();
      return absl::OkStatus();
    };
  }

  absl::Status Flush() {
    if (buffer_.empty()) return absl::OkStatus();
    Response message;
    message.set_chunk(std::move(buffer_));
    buffer_.clear();
    if (!writer_->Write(message)) return absl::CancelledError("the client went away");
    return absl::OkStatus();
  }

 private:
  static constexpr size_t kChunk = 1 << 20;
  grpc::ServerWriter<Response>* writer_;
  std::string buffer_;
};

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

grpc::Status ImageServiceImpl::PrepareSnapshot(grpc::ServerContext* context,
                                               const v1::PrepareSnapshotRequest* request,
                                               v1::PrepareSnapshotResponse* response) {
  auto ranges = [](const google::protobuf::RepeatedPtrField<v1::IdMapping>& mappings) {
    std::vector<IdRange> out;
    for (const v1::IdMapping& m : mappings)
      out.push_back({m.container_id(), m.host_id(), m.size()});
    return out;
  };
  OwnerMap owners{ranges(request->uid_mappings()), ranges(request->gid_mappings())};
  absl::StatusOr<PreparedSnapshot> prepared =
      store_->PrepareSnapshot(request->key(), request->image(), owners);
  if (!prepared.ok()) return ToGrpcStatus(prepared.status());
  // The first container of an image kept as blobs waits for its unpack: a caller that gave
  // up meanwhile (deadline, cancel) has cleaned up and will not remove this snapshot.
  if (context->IsCancelled()) {
    if (absl::Status s = store_->RemoveSnapshot(request->key()); !s.ok()) {
      LogWarning("remove snapshot of a cancelled request: %s", s.message());
    }
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        absl::StrCat("prepare snapshot \"", request->key(),
                                     "\": the caller gave up before it was ready"));
  }
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

grpc::Status ImageServiceImpl::TagImage(grpc::ServerContext* /*context*/,
                                        const v1::TagImageRequest* request,
                                        v1::TagImageResponse* response) {
  absl::StatusOr<Image> image = store_->TagImage(request->source(), request->target());
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, response->mutable_image());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext* /*context*/,
                                           const v1::RemoveImageRequest* request,
                                           v1::RemoveImageResponse* response) {
  absl::StatusOr<RemovedImages> removed = store_->RemoveImage(request->ref(), request->force());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  response->mutable_deleted()->Assign(removed->deleted.begin(), removed->deleted.end());
  response->mutable_untagged()->Assign(removed->untagged.begin(), removed->untagged.end());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::LoadImage(grpc::ServerContext* context,
                                         grpc::ServerReader<v1::LoadImageRequest>* reader,
                                         v1::LoadImageResponse* response) {
  v1::LoadImageRequest message;
  // The first message says how to load; it may carry the first chunk too.
  bool first_pending = reader->Read(&message);
  const bool unpack = !(first_pending && message.skip_unpack());
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    if (first_pending) {
      first_pending = false;
      if (!message.chunk().empty()) return absl::string_view(message.chunk());
    }
    while (reader->Read(&message)) {
      if (!message.chunk().empty()) return absl::string_view(message.chunk());
    }
    if (context->IsCancelled()) return absl::CancelledError("the client cancelled the upload");
    return absl::string_view();
  };
  absl::StatusOr<std::vector<Image>> images = store_->LoadArchive(source, unpack);
  if (!images.ok()) return ToGrpcStatus(images.status());
  for (const Image& image : *images) ToProto(image, response->add_images());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::SaveImage(grpc::ServerContext* /*context*/,
                                         const v1::SaveImageRequest* request,
                                         grpc::ServerWriter<v1::SaveImageResponse>* writer) {
  if (request->refs().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "save: name at least one image");
  }
  ChunkedSink<v1::SaveImageResponse> chunks(writer);
  std::vector<std::string> refs(request->refs().begin(), request->refs().end());
  absl::Status s = store_->SaveArchive(refs, chunks.sink());
  if (s.ok()) s = chunks.Flush();
  return ToGrpcStatus(s);
}

grpc::Status ImageServiceImpl::PullImage(grpc::ServerContext* context,
                                         const v1::PullImageRequest* request,
                                         grpc::ServerWriter<v1::PullImageResponse>* writer) {
  ProgressFn progress = [&](const BlobProgress& p) {
    if (context->IsCancelled()) return;
    v1::PullImageResponse message;
    message.set_layer(p.digest);
    message.set_done_bytes(p.done_bytes);
    message.set_total_bytes(p.total_bytes);
    message.set_action(p.action);
    writer->Write(message);
  };
  absl::StatusOr<PullResult> pulled =
      image::PullImage(*store_, request->ref(), Access(request->access()), progress,
                       /*unpack=*/!request->skip_unpack());
  if (!pulled.ok()) return ToGrpcStatus(pulled.status());
  v1::PullImageResponse last;
  ToProto(pulled->image, last.mutable_image());
  last.set_manifest_digest(pulled->manifest_digest);
  last.set_action("pulled");
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::UnpackImage(grpc::ServerContext* /*context*/,
                                           const v1::UnpackImageRequest* request,
                                           v1::UnpackImageResponse* response) {
  absl::StatusOr<Image> image = store_->UnpackImage(request->ref());
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, response->mutable_image());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::PushImage(grpc::ServerContext* context,
                                         const v1::PushImageRequest* request,
                                         grpc::ServerWriter<v1::PushImageResponse>* writer) {
  ProgressFn progress = [&](const BlobProgress& p) {
    if (context->IsCancelled()) return;
    v1::PushImageResponse message;
    message.set_layer(p.digest);
    message.set_done_bytes(p.done_bytes);
    message.set_total_bytes(p.total_bytes);
    message.set_action(p.action);
    writer->Write(message);
  };
  absl::StatusOr<std::string> digest = image::PushImage(*store_, request->image(), request->ref(),
                                                        Access(request->access()), progress);
  if (!digest.ok()) return ToGrpcStatus(digest.status());
  v1::PushImageResponse last;
  last.set_digest(*digest);
  last.set_action("pushed");
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::DiffSnapshot(grpc::ServerContext* /*context*/,
                                            const v1::DiffSnapshotRequest* request,
                                            v1::DiffSnapshotResponse* response) {
  absl::StatusOr<std::vector<FileChange>> changes = store_->DiffSnapshot(request->key());
  if (!changes.ok()) return ToGrpcStatus(changes.status());
  for (const FileChange& change : *changes) {
    v1::FileChange* out = response->add_changes();
    out->set_kind(std::string(1, change.kind));
    out->set_path(change.path);
  }
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::CommitSnapshot(grpc::ServerContext* /*context*/,
                                              const v1::CommitSnapshotRequest* request,
                                              v1::CommitSnapshotResponse* response) {
  CommitOptions options;
  options.comment = request->comment();
  if (!request->created_by().empty()) options.created_by = request->created_by();
  if (request->replace_config()) options.config = FromProto(request->config());
  absl::StatusOr<Image> image = store_->CommitSnapshot(request->key(), request->name(), options);
  if (!image.ok()) return ToGrpcStatus(image.status());
  ToProto(*image, response->mutable_image());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::ExportSnapshot(
    grpc::ServerContext* /*context*/, const v1::ExportSnapshotRequest* request,
    grpc::ServerWriter<v1::ExportSnapshotResponse>* writer) {
  ChunkedSink<v1::ExportSnapshotResponse> chunks(writer);
  absl::Status s = store_->ExportSnapshot(request->key(), chunks.sink());
  if (s.ok()) s = chunks.Flush();
  return ToGrpcStatus(s);
}

grpc::Status ImageServiceImpl::ImageHistory(grpc::ServerContext* /*context*/,
                                            const v1::ImageHistoryRequest* request,
                                            v1::ImageHistoryResponse* response) {
  absl::StatusOr<std::vector<HistoryItem>> items = store_->History(request->ref());
  if (!items.ok()) return ToGrpcStatus(items.status());
  for (const HistoryItem& item : *items) {
    v1::HistoryEntry* out = response->add_entries();
    out->set_layer(item.layer);
    out->set_created_unix(absl::ToUnixSeconds(item.created));
    out->set_created_by(item.created_by);
    out->set_size_bytes(item.size_bytes);
    out->set_comment(item.comment);
  }
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::PruneImages(grpc::ServerContext* /*context*/,
                                           const v1::PruneImagesRequest* request,
                                           v1::PruneImagesResponse* response) {
  absl::StatusOr<PruneReport> report = store_->Prune(request->all());
  if (!report.ok()) return ToGrpcStatus(report.status());
  response->mutable_deleted()->Assign(report->deleted.begin(), report->deleted.end());
  response->set_reclaimed_bytes(report->reclaimed_bytes);
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::GetDiskUsage(grpc::ServerContext* /*context*/,
                                            const v1::GetDiskUsageRequest* /*request*/,
                                            v1::GetDiskUsageResponse* response) {
  absl::StatusOr<DiskUsageReport> report = store_->DiskUsage();
  if (!report.ok()) return ToGrpcStatus(report.status());
  response->set_images(report->images);
  response->set_images_in_use(report->images_in_use);
  response->set_layers(report->layers);
  response->set_layer_bytes(report->layer_bytes);
  response->set_layer_bytes_reclaimable(report->layer_bytes_reclaimable);
  response->set_blobs(report->blobs);
  response->set_blob_bytes(report->blob_bytes);
  response->set_blob_bytes_reclaimable(report->blob_bytes_reclaimable);
  for (const DiskUsageReport::SnapshotUsage& snapshot : report->snapshots) {
    v1::SnapshotUsage* out = response->add_snapshots();
    out->set_key(snapshot.key);
    out->set_image_id(snapshot.image_id);
    out->set_upper_bytes(snapshot.upper_bytes);
  }
  return grpc::Status::OK;
}

RegistryOptions ImageServiceImpl::Access(const v1::RegistryAccess& access) const {
  RegistryOptions options = FromProto(access);
  options.credential_store = &credentials_;
  return options;
}

grpc::Status ImageServiceImpl::Login(grpc::ServerContext* /*context*/,
                                     const v1::LoginRequest* request, v1::LoginResponse* response) {
  absl::Status s = LoginRegistry(credentials_, request->registry(),
                                 Credentials{request->username(), request->password()},
                                 FromProto(request->access()));
  if (!s.ok()) return ToGrpcStatus(s);
  response->set_saved_in(credentials_.path());
  return grpc::Status::OK;
}

grpc::Status ImageServiceImpl::Logout(grpc::ServerContext* /*context*/,
                                      const v1::LogoutRequest* request,
                                      v1::LogoutResponse* response) {
  absl::StatusOr<bool> removed = LogoutRegistry(credentials_, request->registry());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  response->set_removed(*removed);
  return grpc::Status::OK;
}

}  // namespace nodeagent::image
