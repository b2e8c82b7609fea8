#pragma once

// nftables through libnftables: scripts in nft's own syntax, run in-process as one atomic
// transaction (no fork of the `nft` binary from a threaded daemon, and no iptables-legacy vs
// iptables-nft ambiguity).

#include <nftables/libnftables.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodeagent::network::linux {

class Nftables {
 public:
  static absl::StatusOr<Nftables> Open();

  // Runs `script` (nft syntax, several commands) as one transaction.
  absl::Status Run(const std::string& script);
  // `nft list table ip NAME`; NOT_FOUND when there is no such table.
  absl::StatusOr<std::string> ListTable(const std::string& name);

 private:
  struct Deleter {
    void operator()(nft_ctx* ctx) const { nft_ctx_free(ctx); }
  };
  explicit Nftables(nft_ctx* ctx) : ctx_(ctx) {}
  std::unique_ptr<nft_ctx, Deleter> ctx_;
};

}  // namespace nodeagent::network::linux
