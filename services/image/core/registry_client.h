#pragma once

// A client of the OCI distribution API (the registry HTTP API v2) over libcurl: manifests,
// blobs streamed as they download, chunked blob upload. HTTP and HTTPS (system CAs, an extra
// CA file, or no verification when asked).
//
// Authentication, as Docker's registries do it: a request answered 401 with
// `WWW-Authenticate: Basic ...` is sent again with the credentials; with
// `WWW-Authenticate: Bearer realm=...,service=...,scope=...` a token is fetched from the realm
// (with the credentials as Basic auth, or anonymously without them) and the request is sent
// again with it. The token is kept for the next requests and renewed on the next 401 (expiry,
// or a scope it does not cover, e.g. push after pull). A registry that still says 401 is
// UNAUTHENTICATED, naming the registry; 403 is PERMISSION_DENIED.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/image/core/registry_auth.h"
#include "services/image/core/types.h"

namespace nodeagent::image {

// "host[:port]/repository[:tag][@sha256:<hex>]". The registry host is required (there is no
// implied default registry): the first component must contain '.' or ':' or be localhost.
struct RegistryReference {
  std::string registry;    // "127.0.0.1:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // "latest" unless a digest alone was given
  std::string digest;      // "sha256:..." or empty

  // "registry/repository:tag" (the name a pulled image gets).
  std::string Name() const;
  // Tag or digest, as the manifests endpoint takes it.
  std::string ManifestReference() const;
};
absl::StatusOr<RegistryReference> ParseRegistryReference(absl::string_view ref);

struct RegistryOptions {
  // http:// instead of https://.
  bool plain_http = false;
  // Accept any certificate (never for production).
  bool skip_tls_verify = false;
  // PEM file of CA certificates to trust besides the system's.
  std::string ca_file;
  // Size of each PATCH of a chunked upload.
  int64_t chunk_bytes = int64_t{16} << 20;
  // Bound of a whole request that is not a blob transfer.
  int timeout_seconds = 60;
  // For registries that ask for authentication; none: anonymous (bearer tokens still work).
  std::optional<Credentials> credentials;
  // Where credentials are looked up by registry host when `credentials` is not set
  // (not owned; may be null).
  const CredentialStore* credential_store = nullptr;
};

// `options` with `credentials` filled from its credential store for `registry`.
absl::StatusOr<RegistryOptions> WithCredentials(RegistryOptions options,
                                                absl::string_view registry);

struct HttpResponse {
  long status = 0;
  // Lowercase header names.
  std::map<std::string, std::string> headers;
  std::string body;
};

class RegistryClient {
 public:
  RegistryClient(std::string registry, RegistryOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // GET a manifest or index (any of the OCI and Docker media types). When `reference` is a
  // digest, the bytes are checked against it. Returns the bytes and the media type.
  struct Manifest {
    std::string bytes;
    std::string media_type;
    std::string digest;  // sha256 of bytes
  };
  absl::StatusOr<Manifest> GetManifest(const std::string& repository, const std::string& reference);
  // A small blob (a config) read whole and checked against its digest.
  absl::StatusOr<std::string> GetBlob(const std::string& repository, const std::string& digest,
                                      int64_t max_bytes);
  // A blob as a stream (redirects followed). The caller verifies the digest.
  // `on_bytes` is told the running total.
  absl::StatusOr<ByteSource> OpenBlob(const std::string& repository, const std::string& digest,
                                      std::function<void(int64_t)> on_bytes);
  absl::StatusOr<bool> HasBlob(const std::string& repository, const std::string& digest);
  // Uploads a file as blob `digest` in chunks (POST, PATCH..., PUT ?digest=).
  absl::Status UploadBlob(const std::string& repository, const std::string& digest,
                          const std::string& path, std::function<void(int64_t)> on_bytes);
  // PUT a manifest under a tag (or digest); returns the digest the registry reports.
  absl::StatusOr<std::string> PutManifest(const std::string& repository,
                                          const std::string& reference,
                                          const std::string& media_type, const std::string& bytes);

  // GET /v2/ (authenticating as the registry asks): checks that the registry is there and
  // accepts the credentials.
  absl::Status CheckAccess();

  // One request; `url` is absolute or a path on the registry. Authenticates and retries once
  // when the registry answers 401 with a challenge.
  absl::StatusOr<HttpResponse> Request(const std::string& method, const std::string& url,
                                       const std::map<std::string, std::string>& headers,
                                       absl::string_view body, int64_t max_body = 4 << 20);

 private:
  std::string Url(absl::string_view path) const;
  void ApplyTls(void* curl) const;
  // One HTTP exchange; `authorization` is sent as the Authorization header when not empty.
  absl::StatusOr<HttpResponse> Perform(const std::string& method, const std::string& url,
                                       const std::map<std::string, std::string>& headers,
                                       absl::string_view body, int64_t max_body,
                                       const std::string& authorization);
  // Answers a challenge: sets the Authorization value the next requests send. `failed` is
  // the value that was just refused.
  absl::Status Authenticate(const std::string& challenge, const std::string& failed);
  std::string Authorization() const;
  // The status for an HTTP error answer (401: UNAUTHENTICATED naming the registry).
  absl::Status HttpError(const std::string& what, const HttpResponse& response) const;

  const std::string registry_;
  const RegistryOptions options_;
  mutable absl::Mutex auth_mu_;
  std::string authorization_ ABSL_GUARDED_BY(auth_mu_);
};

}  // namespace nodeagent::image
