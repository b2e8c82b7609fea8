#include "tests/support/host_links.h"

#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "tests/support/subprocess.h"

namespace nodeagent::testing {

std::vector<std::string> HostLinksWithPrefix(const std::string& prefix) {
  CommandResult r = RunCommand({"ip", "-o", "link", "show"});
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    // "12: nbabcd123456: <BROADCAST,..." or "13: nvabcd12345678@if2: <...".
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(": ", 2));
    if (f.size() < 2) continue;
    std::string name(f[1].substr(0, f[1].find('@')));
    if (absl::StartsWith(name, prefix)) out.push_back(name);
  }
  return out;
}

std::vector<std::string> HostLinksWithPrefixOnceReaped(const std::string& prefix, size_t at_most) {
  std::vector<std::string> links = HostLinksWithPrefix(prefix);
  for (int i = 0; i < 500 && links.size() > at_most; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    links = HostLinksWithPrefix(prefix);
  }
  return links;
}

}  // namespace nodeagent::testing
