#include "services/image/core/registry_auth.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"

namespace nodeagent::image {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxAuthFileBytes = 1 << 20;

// The file as JSON: {} when it does not exist.
absl::StatusOr<Json> ReadAuthFile(const std::string& path) {
  if (!linux::PathExists(path)) return Json::object();
  NA_ASSIGN_OR_RETURN(std::string text, linux::ReadFile(path));
  if (static_cast<int64_t>(text.size()) > kMaxAuthFileBytes) {
    return absl::FailedPreconditionError(absl::StrCat("\"", path, "\": too large"));
  }
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::FailedPreconditionError(absl::StrCat("\"", path, "\": not a JSON object"));
  }
  if (j.contains("auths") && !j["auths"].is_object()) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", path, "\": \"auths\" is not an object"));
  }
  return j;
}

}  // namespace

std::string EncodeAuth(const Credentials& credentials) {
  return absl::Base64Escape(absl::StrCat(credentials.username, ":", credentials.password));
}

absl::StatusOr<Credentials> DecodeAuth(absl::string_view auth) {
  std::string plain;
  if (!absl::Base64Unescape(auth, &plain)) {
    return absl::InvalidArgumentError("\"auth\" is not base64");
  }
  size_t colon = plain.find(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError("\"auth\" is not base64 of \"user:password\"");
  }
  return Credentials{plain.substr(0, colon), plain.substr(colon + 1)};
}

absl::StatusOr<std::optional<Credentials>> CredentialStore::Get(absl::string_view registry) const {
  absl::MutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(Json j, ReadAuthFile(path_));
  if (!j.contains("auths")) return std::nullopt;
  const Json& auths = j["auths"];
  auto it = auths.find(std::string(registry));
  if (it == auths.end()) return std::nullopt;
  if (!it->is_object() || !it->contains("auth") || !(*it)["auth"].is_string()) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", path_, "\": entry \"", registry, "\" has no \"auth\" string"));
  }
  absl::StatusOr<Credentials> credentials = DecodeAuth((*it)["auth"].get<std::string>());
  if (!credentials.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("\"", path_, "\": entry \"", registry,
                                                      "\": ", credentials.status().message()));
  }
  return *credentials;
}

absl::Status CredentialStore::Put(absl::string_view registry, const Credentials& credentials) {
  absl::MutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(Json j, ReadAuthFile(path_));
  j["auths"][std::string(registry)] = Json{{"auth", EncodeAuth(credentials)}};
  return linux::WriteFileAtomic(path_, j.dump(2) + "\n", 0600);
}

absl::StatusOr<bool> CredentialStore::Remove(absl::string_view registry) {
  absl::MutexLock lock(&mu_);
  NA_ASSIGN_OR_RETURN(Json j, ReadAuthFile(path_));
  if (!j.contains("auths") || j["auths"].erase(std::string(registry)) == 0) return false;
  NA_RETURN_IF_ERROR(linux::WriteFileAtomic(path_, j.dump(2) + "\n", 0600));
  return true;
}

absl::StatusOr<AuthChallenge> ParseAuthChallenge(absl::string_view header) {
  const std::string what = absl::StrCat("WWW-Authenticate \"", header, "\"");
  absl::string_view rest = absl::StripAsciiWhitespace(header);
  size_t space = rest.find(' ');
  AuthChallenge challenge;
  challenge.scheme = absl::AsciiStrToLower(rest.substr(0, space));
  if (challenge.scheme.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty"));
  if (space == absl::string_view::npos) return challenge;
  rest = rest.substr(space + 1);
  while (true) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    while (!rest.empty() && rest.front() == ',')
      rest = absl::StripLeadingAsciiWhitespace(rest.substr(1));
    if (rest.empty()) break;
    size_t eq = rest.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": expected name=value"));
    }
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest = absl::StripLeadingAsciiWhitespace(rest.substr(eq + 1));
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      bool closed = false;
      for (; i < rest.size(); ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) {
          value.push_back(rest[++i]);
        } else if (rest[i] == '"') {
          closed = true;
          break;
        } else {
          value.push_back(rest[i]);
        }
      }
      if (!closed) return absl::InvalidArgumentError(absl::StrCat(what, ": unterminated quote"));
      rest = rest.substr(i + 1);
    } else {
      size_t comma = rest.find(',');
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, comma)));
      rest = comma == absl::string_view::npos ? absl::string_view() : rest.substr(comma);
    }
    challenge.params[name] = value;
  }
  return challenge;
}

}  // namespace nodeagent::image
