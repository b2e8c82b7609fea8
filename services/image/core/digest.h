#pragma once

// sha256 digests as the OCI image spec writes them: "sha256:<64 lowercase hex>".

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace nodeagent::image {

inline constexpr absl::string_view kSha256Prefix = "sha256:";

// Streaming sha256 (OpenSSL EVP). Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();

  void Update(absl::string_view data);
  // Lowercase hex of the digest of everything passed to Update. Ends the stream.
  std::string FinishHex();

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
};

// Lowercase hex sha256 of `data`.
std::string Sha256Hex(absl::string_view data);

// True for exactly 64 lowercase hex characters.
bool IsSha256Hex(absl::string_view hex);

// True for one or more lowercase hex characters.
bool IsLowerHex(absl::string_view s);

// "sha256:" + hex.
std::string Sha256Digest(absl::string_view hex);

// The hex part of "sha256:<64 hex>"; INVALID_ARGUMENT for anything else.
absl::StatusOr<std::string> ParseSha256Digest(absl::string_view digest);

}  // namespace nodeagent::image
