#pragma once

// A NodeFixture for the network end-to-end tests: after the suite (containers, networks and
// the node gone) nothing of the node may be left in the kernel: no bridge or veth with its
// prefixes, no nftables table, no mount below its directories. What is found is reported and
// then removed, so a failed run does not leak into the next.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "services/network/core/network_manager.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {

// Names of the host's links that start with `prefix` (`ip -o link`, without "@peer").
inline std::vector<std::string> LinksWithPrefix(const std::string& prefix) {
  CommandResult r = RunCommand({"ip", "-o", "link", "show"});
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(": ", 2));
    if (f.size() < 2) continue;
    std::string name(f[1].substr(0, f[1].find('@')));
    if (absl::StartsWith(name, prefix)) out.push_back(name);
  }
  return out;
}

// The same once released veths are gone: the network service deletes a released endpoint's
// veth just after it replies (the kernel takes ~25 ms a veth). Waits up to 5 s for at most
// `at_most` links to be left.
inline std::vector<std::string> LinksWithPrefixOnceReaped(const std::string& prefix,
                                                          size_t at_most = 0) {
  std::vector<std::string> links = LinksWithPrefix(prefix);
  for (int i = 0; i < 500 && links.size() > at_most; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    links = LinksWithPrefix(prefix);
  }
  return links;
}

class NetworkNodeFixture : public NodeFixture {
 protected:
  static void SetUpTestSuite() {
    NodeFixture::SetUpTestSuite();
    names_ = network::KernelNamesFor(base_ + "/state/network");
  }

  static void TearDownTestSuite() {
    std::string base = base_;
    NodeFixture::TearDownTestSuite();
    std::vector<std::string> left = LinksWithPrefix(names_.bridge_prefix);
    std::vector<std::string> veths = LinksWithPrefix(names_.veth_prefix);
    left.insert(left.end(), veths.begin(), veths.end());
    EXPECT_THAT(left, ::testing::IsEmpty()) << "links left behind";
    EXPECT_EQ(RunCommand({"nft", "list", "table", "ip", names_.nft_table}).exit_code, 1)
        << "nftables table left behind";
    for (const std::string& m : HostMounts()) {
      EXPECT_FALSE(absl::StartsWith(m, base)) << "mount left behind: " << m;
    }
    for (const std::string& link : left) RunCommand({"ip", "link", "del", link});
    RunCommand({"nft", "delete", "table", "ip", names_.nft_table});
  }

  static inline network::KernelNames names_;
};

}  // namespace nodeagent::testing
