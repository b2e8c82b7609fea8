#pragma once

// A NodeFixture for the network end-to-end tests: after the suite (containers, networks and
// the node gone) nothing of the node may be left in the kernel: no bridge or veth with its
// prefixes, no nftables table, no mount below its directories. What is found is reported and
// then removed, so a failed run does not leak into the next.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "services/network/core/network_manager.h"
#include "tests/e2e/node_fixture.h"
#include "tests/support/host_links.h"

namespace nodeagent::testing {

class NetworkNodeFixture : public NodeFixture {
 protected:
  static void SetUpTestSuite() {
    NodeFixture::SetUpTestSuite();
    names_ = network::KernelNamesFor(base_ + "/state/network");
  }

  static void TearDownTestSuite() {
    std::string base = base_;
    NodeFixture::TearDownTestSuite();
    std::vector<std::string> left = HostLinksWithPrefix(names_.bridge_prefix);
    std::vector<std::string> veths = HostLinksWithPrefix(names_.veth_prefix);
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
