#include "services/runtime/grpc/image_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "services/common/grpc/service_host.h"
#include "services/common/grpc/status_convert.h"
#include "services/runtime/grpc/convert.h"

namespace nodeagent::runtime {
namespace {

// The first container of an image pulled or loaded with --skip-unpack unpacks its layers in
// PrepareSnapshot: minutes for images of many GB.
constexpr auto kPrepareDeadline = std::chrono::seconds(3600);
constexpr auto kRemoveDeadline = std::chrono::seconds(60);

absl::Status ImageServiceError(const grpc::Status& status, const std::string& socket) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(
        absl::StrCat("image service at \"", socket, "\" is unavailable: ", status.error_message()));
  }
  return FromGrpcStatus(status);
}

}  // namespace

ImageServiceSnapshots::ImageServiceSnapshots(const std::string& image_socket)
    : socket_(image_socket), stub_(v1::ImageService::NewStub(DialUnixSocket(image_socket))) {}

absl::StatusOr<PreparedRootfs> ImageServiceSnapshots::Prepare(const std::string& key,
                                                              const std::string& image_ref,
                                                              const UserNamespaceConfig& userns) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kPrepareDeadline);
  v1::PrepareSnapshotRequest request;
  request.set_key(key);
  request.set_image(image_ref);
  IdMappingsToProto(userns.uid_mappings, request.mutable_uid_mappings());
  IdMappingsToProto(userns.gid_mappings, request.mutable_gid_mappings());
  v1::PrepareSnapshotResponse response;
  grpc::Status status = stub_->PrepareSnapshot(&context, request, &response);
  if (!status.ok()) return ImageServiceError(status, socket_);

  PreparedRootfs rootfs;
  for (const v1::Mount& m : response.mounts()) {
    rootfs.mounts.push_back({m.type(), m.source(), m.destination(),
                             std::vector<std::string>(m.options().begin(), m.options().end())});
  }
  rootfs.image_id = response.image().id();
  const v1::ImageConfig& config = response.image().config();
  rootfs.image_defaults.env.assign(config.env().begin(), config.env().end());
  rootfs.image_defaults.entrypoint.assign(config.entrypoint().begin(), config.entrypoint().end());
  rootfs.image_defaults.cmd.assign(config.cmd().begin(), config.cmd().end());
  rootfs.image_defaults.working_dir = config.working_dir();
  return rootfs;
}

absl::Status ImageServiceSnapshots::Remove(const std::string& key) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kRemoveDeadline);
  v1::RemoveSnapshotRequest request;
  request.set_key(key);
  v1::RemoveSnapshotResponse response;
  grpc::Status status = stub_->RemoveSnapshot(&context, request, &response);
  if (!status.ok()) return ImageServiceError(status, socket_);
  return absl::OkStatus();
}

}  // namespace nodeagent::runtime
