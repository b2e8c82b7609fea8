#pragma once

// The host's network links as `ip -o link` lists them, for tests that check what the network
// service made or left behind (integration and e2e alike).

#include <cstddef>
#include <string>
#include <vector>

namespace nodeagent::testing {

// Names of the host's links that start with `prefix` (without "@peer").
std::vector<std::string> HostLinksWithPrefix(const std::string& prefix);

// The same once released veths are gone: the network service deletes a released endpoint's
// veth just after it replies (the kernel takes ~25 ms a veth). Waits up to 5 s for at most
// `at_most` links to be left.
std::vector<std::string> HostLinksWithPrefixOnceReaped(const std::string& prefix,
                                                       size_t at_most = 0);

}  // namespace nodeagent::testing
