#pragma once

// Image references as users type them, and snapshot keys.
//
//   name            -> name:latest
//   name:tag
//   host:5000/a/b:t    (a registry host is kept as part of the name; nothing is implied)
//   sha256:<hex>    -> an image id (full, or a prefix of at least 4 hex digits)
//   <hex>           -> a unique id prefix of at least 4 hex digits, when no such name exists

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::image {

inline constexpr absl::string_view kDefaultTag = "latest";
inline constexpr size_t kMinIdPrefix = 4;

// A parsed "repository:tag".
struct ImageName {
  std::string repository;
  std::string tag;

  std::string ToString() const;
  bool operator==(const ImageName&) const = default;
};

// Parses "name" or "name:tag" with the grammar of the distribution reference spec (lowercase
// path components, optional registry host and port, tag [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
// INVALID_ARGUMENT says what is wrong. Digest references ("name@sha256:...") are refused.
absl::StatusOr<ImageName> ParseImageName(absl::string_view ref);

// Resolves `ref` to an image id. `names` maps "repository:tag" to id, `ids` holds every id
// ("sha256:<hex>"). A name wins over an id prefix, as in Docker. NOT_FOUND when nothing
// matches, INVALID_ARGUMENT for a malformed reference or an ambiguous id prefix.
absl::StatusOr<std::string> ResolveImageReference(absl::string_view ref,
                                                  const std::map<std::string, std::string>& names,
                                                  const std::set<std::string>& ids);

inline constexpr size_t kMaxSnapshotKeyLength = 128;

// A snapshot key names a directory: 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'.
absl::Status ValidateSnapshotKey(absl::string_view key);

}  // namespace nodeagent::image
