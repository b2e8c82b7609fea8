#pragma once

// IPv4 addresses and subnets as the network service needs them: parsing with errors that
// name the bad part, formatting, overlap tests and the host range of a subnet.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::network {

// An IPv4 address in host byte order.
struct Ipv4 {
  uint32_t value = 0;

  static absl::StatusOr<Ipv4> Parse(absl::string_view text);
  std::string ToString() const;
  friend bool operator==(Ipv4 a, Ipv4 b) { return a.value == b.value; }
  friend bool operator<(Ipv4 a, Ipv4 b) { return a.value < b.value; }
};

// An IPv4 subnet: the network address (host bits zero) and a prefix length 0..32.
struct Subnet {
  Ipv4 network;
  int prefix = 0;

  // "10.213.0.0/24". Host bits set ("10.213.0.1/24") are an error, as Docker makes them.
  static absl::StatusOr<Subnet> Parse(absl::string_view text);
  std::string ToString() const;

  uint32_t Mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  bool Contains(Ipv4 ip) const { return (ip.value & Mask()) == network.value; }
  bool Overlaps(const Subnet& other) const;
  // First and last address a host may have (network and broadcast excluded for /0../30).
  Ipv4 FirstHost() const;
  Ipv4 LastHost() const;
  uint64_t Size() const { return uint64_t{1} << (32 - prefix); }
  friend bool operator==(const Subnet& a, const Subnet& b) {
    return a.network == b.network && a.prefix == b.prefix;
  }
};

// 02:42:a:b:c:d for a.b.c.d, as Docker derives container MACs: unique per address and stable.
std::string MacForIp(Ipv4 ip);

}  // namespace nodeagent::network
