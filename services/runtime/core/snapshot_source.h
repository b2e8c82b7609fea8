#pragma once

// What the runtime needs from the image service: a container's rootfs, prepared and removed.
// grpc/image_client.cc implements it over the image service's socket.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/runtime/core/container.h"

namespace nodeagent::runtime {

struct PreparedRootfs {
  std::vector<MountSpec> mounts;  // Applied in order at the rootfs path.
  std::string image_id;
  ImageRunDefaults image_defaults;
};

class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  // NOT_FOUND when the image does not exist; nothing is left behind on error. `userns`: the
  // container's user namespace maps, so that its upper's owners can be mapped back.
  virtual absl::StatusOr<PreparedRootfs> Prepare(const std::string& key,
                                                 const std::string& image_ref,
                                                 const UserNamespaceConfig& userns) = 0;
  // Removing a missing snapshot succeeds.
  virtual absl::Status Remove(const std::string& key) = 0;
};

}  // namespace nodeagent::runtime
