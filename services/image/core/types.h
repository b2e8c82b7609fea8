#pragma once

// Domain types of the image store. No gRPC or protobuf types here: the adapter in
// services/image/grpc converts these to and from nodeagent.v1 messages.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nodeagent::image {

// What an image says about how to run it (the runnable part of an OCI image config).
struct ImageConfig {
  std::vector<std::string> env;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;

  bool operator==(const ImageConfig&) const = default;
};

// An image as the store knows it.
struct Image {
  // Names ("repository:tag") pointing at this image, sorted.
  std::vector<std::string> names;
  // "sha256:<hex>" of the image's OCI config JSON.
  std::string id;
  // Bytes stored on disk for this image's (unique) unpacked layers; a layer not unpacked yet
  // counts its blob's bytes.
  int64_t size_bytes = 0;
  // false while a layer is only stored as its blob (pulled or loaded without unpacking); the
  // first container (or UnpackImage) unpacks it.
  bool unpacked = true;
  absl::Time created = absl::UnixEpoch();
  // Layer diff ids ("sha256:<hex>" of each uncompressed layer tar), lowest first.
  std::vector<std::string> layers;
  ImageConfig config;
};

// A filesystem mount in the form mount(2) takes it.
struct Mount {
  std::string type;
  std::string source;
  // Empty for a container's rootfs.
  std::string destination;
  std::vector<std::string> options;
};

// A container's rootfs in the store: the image's layers plus a writable upper directory.
struct Snapshot {
  std::string key;
  std::string image_id;
  std::string upper_dir;
};

// What PrepareSnapshot hands to the runtime.
struct PreparedSnapshot {
  // Mounts that, applied in order at the rootfs path, give the container's root.
  std::vector<Mount> mounts;
  Image image;
  std::string upper_dir;
};

// Pulls the next chunk of a byte stream. An empty view means the stream ended; a view stays
// valid until the next call. An error aborts whatever is consuming the stream.
using ByteSource = std::function<absl::StatusOr<absl::string_view>()>;

}  // namespace nodeagent::image
