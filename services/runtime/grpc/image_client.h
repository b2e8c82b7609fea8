#pragma once

// SnapshotSource over the image service's gRPC API (runtime -> image in DESIGN.md).

#include <memory>
#include <string>

#include "nodeagent/v1/image.grpc.pb.h"
#include "services/runtime/core/snapshot_source.h"

namespace nodeagent::runtime {

class ImageServiceSnapshots : public SnapshotSource {
 public:
  explicit ImageServiceSnapshots(const std::string& image_socket);

  absl::StatusOr<PreparedRootfs> Prepare(const std::string& key, const std::string& image_ref,
                                         const UserNamespaceConfig& userns) override;
  absl::Status Remove(const std::string& key) override;

 private:
  std::string socket_;
  std::unique_ptr<v1::ImageService::Stub> stub_;
};

}  // namespace nodeagent::runtime
