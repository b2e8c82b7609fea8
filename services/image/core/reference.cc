#include "services/image/core/reference.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/image/core/digest.h"

namespace nodeagent::image {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

absl::Status BadReference(absl::string_view ref, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("image \"", ref, "\": invalid reference format: ", why));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool IsPathComponent(absl::string_view s) {
  size_t i = 0;
  auto run = [&]() {
    size_t start = i;
    while (i < s.size() && IsLowerAlnum(s[i])) ++i;
    return i > start;
  };
  if (!run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!run()) return false;
  }
  return true;
}

// domain-component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
bool IsDomainComponent(absl::string_view s) {
  if (s.empty() || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

// domain := domain-component ('.' domain-component)* (':' [0-9]+)?
bool IsDomain(absl::string_view s) {
  absl::string_view host = s;
  if (size_t colon = s.rfind(':'); colon != absl::string_view::npos) {
    host = s.substr(0, colon);
    absl::string_view port = s.substr(colon + 1);
    if (port.empty()) return false;
    for (char c : port) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  for (absl::string_view part : absl::StrSplit(host, '.')) {
    if (!IsDomainComponent(part)) return false;
  }
  return true;
}

bool IsTag(absl::string_view s) {
  if (s.empty() || s.size() > kMaxTagLength) return false;
  auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(s[0])) return false;
  for (char c : s.substr(1)) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// Looks up an id by hex prefix in the sorted set of ids.
absl::StatusOr<std::string> ResolveIdPrefix(absl::string_view ref, absl::string_view hex,
                                            const std::set<std::string>& ids) {
  std::string prefix = Sha256Digest(hex);
  auto it = ids.lower_bound(prefix);
  if (it == ids.end() || !absl::StartsWith(*it, prefix)) {
    return absl::NotFoundError(absl::StrCat("image \"", ref, "\": not found"));
  }
  auto next = std::next(it);
  if (next != ids.end() && absl::StartsWith(*next, prefix)) {
    size_t matches = 0;
    for (auto m = it; m != ids.end() && absl::StartsWith(*m, prefix); ++m) ++matches;
    return absl::InvalidArgumentError(
        absl::StrCat("image \"", ref, "\": ambiguous id prefix (", matches, " images match)"));
  }
  return *it;
}

}  // namespace

std::string ImageName::ToString() const { return absl::StrCat(repository, ":", tag); }

absl::StatusOr<ImageName> ParseImageName(absl::string_view ref) {
  if (ref.empty()) return BadReference(ref, "empty name");
  if (absl::StrContains(ref, '@')) {
    return BadReference(ref, "references by digest (name@sha256:...) are not supported yet");
  }
  ImageName name;
  absl::string_view repository = ref;
  // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
  size_t colon = ref.rfind(':');
  size_t slash = ref.rfind('/');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    repository = ref.substr(0, colon);
    absl::string_view tag = ref.substr(colon + 1);
    if (!IsTag(tag)) {
      return BadReference(ref, "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'");
    }
    name.tag = std::string(tag);
  } else {
    name.tag = std::string(kDefaultTag);
  }
  if (repository.empty()) return BadReference(ref, "empty repository name");
  if (repository.size() > kMaxNameLength) {
    return BadReference(ref, absl::StrCat("repository name longer than ", kMaxNameLength));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(repository, '/');
  size_t first_path = 0;
  // Like Docker: the first of several components is a registry host when it looks like one.
  if (parts.size() > 1 && (absl::StrContains(parts[0], '.') || absl::StrContains(parts[0], ':') ||
                           parts[0] == "localhost")) {
    if (!IsDomain(parts[0])) return BadReference(ref, "bad registry host");
    first_path = 1;
  }
  for (size_t i = first_path; i < parts.size(); ++i) {
    if (!IsPathComponent(parts[i])) {
      bool has_upper = false;
      for (char c : parts[i]) has_upper |= absl::ascii_isupper(static_cast<unsigned char>(c));
      return BadReference(ref, has_upper ? "repository name must be lowercase"
                                         : "a name component is [a-z0-9]+ joined by '.', '_', "
                                           "'__' or '-'");
    }
  }
  name.repository = std::string(repository);
  return name;
}

absl::StatusOr<std::string> ResolveImageReference(absl::string_view ref,
                                                  const std::map<std::string, std::string>& names,
                                                  const std::set<std::string>& ids) {
  absl::string_view hex = ref;
  if (absl::ConsumePrefix(&hex, kSha256Prefix)) {
    if (!IsLowerHex(hex) || hex.size() > 64 || hex.size() < kMinIdPrefix) {
      return BadReference(ref, "an id is sha256: and 4 to 64 lowercase hex digits");
    }
    return ResolveIdPrefix(ref, hex, ids);
  }
  absl::StatusOr<ImageName> name = ParseImageName(ref);
  if (name.ok()) {
    if (auto it = names.find(name->ToString()); it != names.end()) return it->second;
  }
  if (IsLowerHex(ref) && ref.size() >= kMinIdPrefix && ref.size() <= 64) {
    return ResolveIdPrefix(ref, ref, ids);
  }
  if (!name.ok()) return name.status();
  return absl::NotFoundError(absl::StrCat("image \"", ref, "\": not found"));
}

absl::Status ValidateSnapshotKey(absl::string_view key) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot key \"", key, "\": ", why));
  };
  if (key.empty()) return bad("empty");
  if (key.size() > kMaxSnapshotKeyLength) {
    return bad(absl::StrCat("longer than ", kMaxSnapshotKeyLength, " characters"));
  }
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return bad("allowed characters are [A-Za-z0-9_.-]");
    }
  }
  if (key.front() == '.' || key.front() == '-') return bad("must not start with '.' or '-'");
  return absl::OkStatus();
}

}  // namespace nodeagent::image
