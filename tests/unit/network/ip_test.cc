#include "services/network/core/ip.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nodeagent::network {
namespace {

using ::testing::HasSubstr;

TEST(Ipv4Test, ParsesAndFormats) {
  absl::StatusOr<Ipv4> ip = Ipv4::Parse("10.213.0.1");
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(ip->value, 0x0ad50001u);
  EXPECT_EQ(ip->ToString(), "10.213.0.1");
  EXPECT_EQ(Ipv4::Parse("255.255.255.255")->value, 0xffffffffu);
}

TEST(Ipv4Test, RejectsMalformed) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "1.2.3.256", "a.b.c.d", "1..2.3", "1.2.3.-4",
                          "01234.1.1.1", " 1.2.3.4"}) {
    absl::StatusOr<Ipv4> ip = Ipv4::Parse(bad);
    EXPECT_FALSE(ip.ok()) << bad;
    EXPECT_EQ(ip.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SubnetTest, ParsesWithRanges) {
  absl::StatusOr<Subnet> s = Subnet::Parse("10.213.7.0/24");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ToString(), "10.213.7.0/24");
  EXPECT_EQ(s->FirstHost().ToString(), "10.213.7.1");
  EXPECT_EQ(s->LastHost().ToString(), "10.213.7.254");
  EXPECT_EQ(s->Size(), 256u);
  EXPECT_TRUE(s->Contains(*Ipv4::Parse("10.213.7.200")));
  EXPECT_FALSE(s->Contains(*Ipv4::Parse("10.213.8.1")));
}

TEST(SubnetTest, ErrorsNameTheBadPart) {
  absl::StatusOr<Subnet> s = Subnet::Parse("10.0.0.0/33");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("bad prefix length \"33\""));
  s = Subnet::Parse("10.0.0.1/24");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("did you mean 10.0.0.0/24"));
  s = Subnet::Parse("10.0.0.0");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("missing prefix length"));
  EXPECT_FALSE(Subnet::Parse("10.0.0.0/").ok());
  EXPECT_FALSE(Subnet::Parse("10.0.x.0/8").ok());
}

TEST(SubnetTest, Overlaps) {
  Subnet a = *Subnet::Parse("10.213.0.0/16");
  Subnet b = *Subnet::Parse("10.213.5.0/24");
  Subnet c = *Subnet::Parse("10.214.0.0/24");
  EXPECT_TRUE(a.Overlaps(b));
  EXPECT_TRUE(b.Overlaps(a));
  EXPECT_FALSE(a.Overlaps(c));
  EXPECT_TRUE(Subnet::Parse("0.0.0.0/0")->Overlaps(c));
}

TEST(SubnetTest, SmallSubnets) {
  Subnet s30 = *Subnet::Parse("10.1.1.4/30");
  EXPECT_EQ(s30.FirstHost().ToString(), "10.1.1.5");
  EXPECT_EQ(s30.LastHost().ToString(), "10.1.1.6");
  Subnet s31 = *Subnet::Parse("10.1.1.4/31");
  EXPECT_EQ(s31.FirstHost().ToString(), "10.1.1.4");
  EXPECT_EQ(s31.LastHost().ToString(), "10.1.1.5");
}

TEST(MacTest, DerivedFromAddress) {
  EXPECT_EQ(MacForIp(*Ipv4::Parse("10.213.1.2")), "02:42:0a:d5:01:02");
}

}  // namespace
}  // namespace nodeagent::network
