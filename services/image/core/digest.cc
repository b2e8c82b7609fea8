#include "services/image/core/digest.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/common/log.h"

namespace nodeagent::image {
namespace {

// OpenSSL only fails here when it cannot allocate or sha256 is missing from the default
// provider; neither is something a caller can handle, so it is a broken invariant.
[[noreturn]] void OpenSslFailed(const char* what) {
  LogError("OpenSSL %s failed for sha256", what);
  std::abort();
}

}  // namespace

void Sha256::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) OpenSslFailed("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
    OpenSslFailed("EVP_DigestInit_ex");
  }
}

Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  if (data.empty()) return;
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) {
    OpenSslFailed("EVP_DigestUpdate");
  }
}

std::string Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), digest, &size) != 1) OpenSslFailed("EVP_DigestFinal_ex");
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), size));
}

std::string Sha256Hex(absl::string_view data) {
  Sha256 hasher;
  hasher.Update(data);
  return hasher.FinishHex();
}

bool IsLowerHex(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsSha256Hex(absl::string_view hex) { return hex.size() == 64 && IsLowerHex(hex); }

std::string Sha256Digest(absl::string_view hex) { return absl::StrCat(kSha256Prefix, hex); }

absl::StatusOr<std::string> ParseSha256Digest(absl::string_view digest) {
  absl::string_view hex = digest;
  if (!absl::ConsumePrefix(&hex, kSha256Prefix) || !IsSha256Hex(hex)) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest \"", digest, "\": want sha256:<64 lowercase hex digits>"));
  }
  return std::string(hex);
}

}  // namespace nodeagent::image
