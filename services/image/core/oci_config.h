#pragma once

// The OCI image config document (opencontainers/image-spec config.md), as far as this store
// uses it. The image id is the sha256 of the serialized bytes, so serialization is canonical:
// keys sorted, no whitespace, empty optional fields left out.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

struct OciHistoryEntry {
  absl::Time created = absl::UnixEpoch();
  std::string created_by;
  std::string comment;
  // True for history entries that made no layer (e.g. a CMD change).
  bool empty_layer = false;

  bool operator==(const OciHistoryEntry&) const = default;
};

struct OciImageConfig {
  absl::Time created = absl::UnixEpoch();
  // GOARCH spelling ("amd64", "arm64", ...).
  std::string architecture;
  std::string os = "linux";
  ImageConfig config;
  // "sha256:<hex>" of each uncompressed layer tar, lowest first.
  std::vector<std::string> diff_ids;
  std::vector<OciHistoryEntry> history;

  bool operator==(const OciImageConfig&) const = default;
};

// The GOARCH name of the architecture this binary was built for.
absl::string_view HostOciArchitecture();

std::string SerializeOciConfig(const OciImageConfig& config);

// Parses a config document; INVALID_ARGUMENT (naming the field) when it is not JSON or a
// field has the wrong type. Unknown fields are ignored.
absl::StatusOr<OciImageConfig> ParseOciConfig(absl::string_view json);

// RFC 3339 in UTC with the fractional seconds that are there: "2024-01-02T03:04:05.5Z".
std::string FormatRfc3339(absl::Time time);
absl::StatusOr<absl::Time> ParseRfc3339(absl::string_view text);

}  // namespace nodeagent::image
