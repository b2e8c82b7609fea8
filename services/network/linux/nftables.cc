#include "services/network/linux/nftables.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nodeagent::network::linux {

absl::StatusOr<Nftables> Nftables::Open() {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return absl::InternalError("nftables: cannot create a context");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  return Nftables(ctx);
}

absl::Status Nftables::Run(const std::string& script) {
  int rc = nft_run_cmd_from_buffer(ctx_.get(), script.c_str());
  // Read (and so clear) both buffers on every run.
  std::string error = nft_ctx_get_error_buffer(ctx_.get());
  (void)nft_ctx_get_output_buffer(ctx_.get());
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("nftables: ", absl::StripAsciiWhitespace(error), "\nscript:\n", script));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Nftables::ListTable(const std::string& name) {
  int rc = nft_run_cmd_from_buffer(ctx_.get(), absl::StrCat("list table ip ", name).c_str());
  std::string error = nft_ctx_get_error_buffer(ctx_.get());
  std::string output = nft_ctx_get_output_buffer(ctx_.get());
  if (rc != 0) {
    if (absl::StrContains(error, "No such file")) {
      return absl::NotFoundError(absl::StrCat("nftables table ip ", name, ": none"));
    }
    return absl::InternalError(
        absl::StrCat("nftables: list table ip ", name, ": ", absl::StripAsciiWhitespace(error)));
  }
  return output;
}

}  // namespace nodeagent::network::linux
