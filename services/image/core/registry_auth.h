#pragma once

// Registry credentials and the HTTP authentication challenges registries send.
//
// Credentials are kept by the image service (it is the one that talks to registries, for
// every client) in <image state>/auth.json, mode 0600, in Docker's config.json format:
//   {"auths": {"registry.example:5000": {"auth": "<base64 of user:password>"}}}
// so a file written by `docker login` (its "auths" part) can be copied in, and back.

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace nodeagent::image {

struct Credentials {
  std::string username;
  std::string password;
};

class CredentialStore {
 public:
  // `path`: the JSON file (need not exist yet).
  explicit CredentialStore(std::string path) : path_(std::move(path)) {}

  // The credentials saved for `registry` ("host[:port]"), if any. A file that cannot be
  // read or parsed is an error (never silently "no credentials").
  absl::StatusOr<std::optional<Credentials>> Get(absl::string_view registry) const;
  // Saves (replaces) the credentials of `registry`; other entries and keys of the file are
  // kept. Written atomically, mode 0600.
  absl::Status Put(absl::string_view registry, const Credentials& credentials);
  // Forgets `registry`; false when nothing was saved for it.
  absl::StatusOr<bool> Remove(absl::string_view registry);

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  mutable absl::Mutex mu_;
};

// Docker's "auth" value: base64 of "user:password", and back (INVALID_ARGUMENT when it is
// not base64 or has no ':').
std::string EncodeAuth(const Credentials& credentials);
absl::StatusOr<Credentials> DecodeAuth(absl::string_view auth);

// One WWW-Authenticate challenge: `Bearer realm="https://auth/token",service="reg",
// scope="repository:a/b:pull"` -> scheme "bearer", params {realm, service, scope}.
// Scheme and parameter names are lowercased; quoted values may contain commas and \-escapes.
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
absl::StatusOr<AuthChallenge> ParseAuthChallenge(absl::string_view header);

}  // namespace nodeagent::image
