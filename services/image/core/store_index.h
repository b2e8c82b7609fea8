#pragma once

// The store's metadata files: <root>/images.json (every image and layer) and
// <root>/snapshots/<key>/snapshot.json. Both are written whole and atomically.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace nodeagent::image {

// An unpacked layer: <root>/layers/<hex>, reachable through <root>/l/<link>.
struct LayerRecord {
  // Bytes on disk below the layer directory.
  int64_t size_bytes = 0;
  // Short name in <root>/l/ that keeps overlay's lowerdir option short.
  std::string link;

  bool operator==(const LayerRecord&) const = default;
};

struct ImageRecord {
  std::set<std::string> names;
  absl::Time created = absl::UnixEpoch();
  // Diff ids, lowest first.
  std::vector<std::string> layers;
  int64_t size_bytes = 0;
  // "sha256:<hex>" of the image's manifest blob; empty for images stored before the
  // content store kept manifests (they cannot be saved or pushed).
  std::string manifest;

  bool operator==(const ImageRecord&) const = default;
};

struct StoreIndex {
  // By image id ("sha256:<hex>").
  std::map<std::string, ImageRecord> images;
  // By diff id ("sha256:<hex>").
  std::map<std::string, LayerRecord> layers;

  bool operator==(const StoreIndex&) const = default;
};

std::string SerializeStoreIndex(const StoreIndex& index);
// INVALID_ARGUMENT when the text is not a well-formed index: a bad id, a layer without a
// record, a name on two images.
absl::StatusOr<StoreIndex> ParseStoreIndex(absl::string_view text);

// One range of a user namespace's id map: container ids [container_id, container_id + size)
// are host ids [host_id, host_id + size).
struct IdRange {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
  bool operator==(const IdRange&) const = default;
};

// How the owners of a user namespace container's upper files map back to the container's ids.
// Empty: the files carry the container's ids already.
struct OwnerMap {
  std::vector<IdRange> uids;
  std::vector<IdRange> gids;
  bool empty() const { return uids.empty() && gids.empty(); }
  // The container's id for a host id (65534, "nobody", for one outside the map).
  uint32_t Uid(uint32_t host) const { return Map(uids, host); }
  uint32_t Gid(uint32_t host) const { return Map(gids, host); }
  bool operator==(const OwnerMap&) const = default;

 private:
  static uint32_t Map(const std::vector<IdRange>& ranges, uint32_t host);
};

struct SnapshotRecord {
  std::string image_id;
  absl::Time created = absl::UnixEpoch();
  OwnerMap owners = {};

  bool operator==(const SnapshotRecord&) const = default;
};

std::string SerializeSnapshotRecord(const SnapshotRecord& record);
absl::StatusOr<SnapshotRecord> ParseSnapshotRecord(absl::string_view text);

}  // namespace nodeagent::image
