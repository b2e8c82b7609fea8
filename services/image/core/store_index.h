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

struct SnapshotRecord {
  std::string image_id;
  absl::Time created = absl::UnixEpoch();

  bool operator==(const SnapshotRecord&) const = default;
};

std::string SerializeSnapshotRecord(const SnapshotRecord& record);
absl::StatusOr<SnapshotRecord> ParseSnapshotRecord(absl::string_view text);

}  // namespace nodeagent::image
