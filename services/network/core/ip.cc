#include "services/network/core/ip.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace nodeagent::network {

absl::StatusOr<Ipv4> Ipv4::Parse(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", text, "\": not an IPv4 address (want a.b.c.d)"));
  }
  uint32_t value = 0;
  for (absl::string_view part : parts) {
    uint32_t octet = 0;
    if (part.empty() || part.size() > 3 || !absl::SimpleAtoi(part, &octet) || octet > 255 ||
        part.find_first_not_of("0123456789") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("address \"", text, "\": bad octet \"", part, "\""));
    }
    value = (value << 8) | octet;
  }
  return Ipv4{value};
}

std::string Ipv4::ToString() const {
  return absl::StrFormat("%d.%d.%d.%d", (value >> 24) & 0xff, (value >> 16) & 0xff,
                         (value >> 8) & 0xff, value & 0xff);
}

absl::StatusOr<Subnet> Subnet::Parse(absl::string_view text) {
  size_t slash = text.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", text, "\": missing prefix length (want a.b.c.d/N)"));
  }
  absl::StatusOr<Ipv4> ip = Ipv4::Parse(text.substr(0, slash));
  if (!ip.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", text, "\": ", ip.status().message()));
  }
  absl::string_view len = text.substr(slash + 1);
  int prefix = 0;
  if (len.empty() || len.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(len, &prefix) || prefix > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", text, "\": bad prefix length \"", len, "\""));
  }
  Subnet subnet{*ip, prefix};
  if ((ip->value & subnet.Mask()) != ip->value) {
    return absl::InvalidArgumentError(
        absl::StrCat("subnet \"", text, "\": host bits set (did you mean ",
                     Subnet{Ipv4{ip->value & subnet.Mask()}, prefix}.ToString(), "?)"));
  }
  return subnet;
}

std::string Subnet::ToString() const { return absl::StrCat(network.ToString(), "/", prefix); }

bool Subnet::Overlaps(const Subnet& other) const {
  int shorter = prefix < other.prefix ? prefix : other.prefix;
  uint32_t mask = shorter == 0 ? 0 : ~uint32_t{0} << (32 - shorter);
  return (network.value & mask) == (other.network.value & mask);
}

Ipv4 Subnet::FirstHost() const { return prefix >= 31 ? network : Ipv4{network.value + 1}; }

Ipv4 Subnet::LastHost() const {
  uint32_t last = network.value | ~Mask();
  return prefix >= 31 ? Ipv4{last} : Ipv4{last - 1};
}

std::string MacForIp(Ipv4 ip) {
  return absl::StrFormat("02:42:%02x:%02x:%02x:%02x", (ip.value >> 24) & 0xff,
                         (ip.value >> 16) & 0xff, (ip.value >> 8) & 0xff, ip.value & 0xff);
}

}  // namespace nodeagent::network
