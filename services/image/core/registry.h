#pragma once

// Pull and push between the image store and an OCI distribution registry.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/image/core/image_store.h"
#include "services/image/core/registry_client.h"

namespace nodeagent::image {

// Pulls `ref` ("host[:port]/repo[:tag|@digest]"). An image index picks linux/<host arch>.
// Every blob is verified; layers the store has are not downloaded. The image is named
// "host[:port]/repo:tag" (unnamed when pulled by digest alone).
struct PullResult {
  Image image;
  std::string manifest_digest;
};
// `unpack` false keeps the layers as verified blobs (ImageImportSpec::unpack).
absl::StatusOr<PullResult> PullImage(ImageStore& store, absl::string_view ref,
                                     const RegistryOptions& options, const ProgressFn& progress,
                                     bool unpack = true);

// Pushes the stored image `image_ref` as `ref`; blobs the registry has are not uploaded.
// Returns the manifest digest.
absl::StatusOr<std::string> PushImage(ImageStore& store, absl::string_view image_ref,
                                      absl::string_view ref, const RegistryOptions& options,
                                      const ProgressFn& progress);

// Checks `login` against the registry (GET /v2/, answering its challenge) and saves it in
// `credentials` for later pulls and pushes. A registry that rejects it is UNAUTHENTICATED
// and nothing is saved. A registry that asks for no authentication accepts any login.
absl::Status LoginRegistry(CredentialStore& credentials, absl::string_view registry,
                           const Credentials& login, RegistryOptions options);
// Forgets the credentials of `registry`; false when there were none.
absl::StatusOr<bool> LogoutRegistry(CredentialStore& credentials, absl::string_view registry);

}  // namespace nodeagent::image
