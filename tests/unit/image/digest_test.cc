#include "services/image/core/digest.h"

#include <gtest/gtest.h>

namespace nodeagent::image {
namespace {

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(DigestTest, StreamingMatchesOneShot) {
  std::string data(100000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  Sha256 hasher;
  for (size_t i = 0; i < data.size(); i += 4093)
    hasher.Update(absl::string_view(data).substr(i, 4093));
  EXPECT_EQ(hasher.FinishHex(), Sha256Hex(data));
}

TEST(DigestTest, ParseDigest) {
  const std::string hex(64, 'a');
  EXPECT_EQ(*ParseSha256Digest("sha256:" + hex), hex);
  EXPECT_EQ(Sha256Digest(hex), "sha256:" + hex);
  EXPECT_FALSE(ParseSha256Digest(hex).ok());
  EXPECT_FALSE(ParseSha256Digest("sha256:" + std::string(63, 'a')).ok());
  EXPECT_FALSE(ParseSha256Digest("sha256:" + std::string(64, 'A')).ok());
  EXPECT_FALSE(ParseSha256Digest("sha512:" + hex).ok());
  EXPECT_EQ(ParseSha256Digest("md5:x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DigestTest, HexPredicates) {
  EXPECT_TRUE(IsLowerHex("0123456789abcdef"));
  EXPECT_FALSE(IsLowerHex(""));
  EXPECT_FALSE(IsLowerHex("abcg"));
  EXPECT_FALSE(IsLowerHex("ABC"));
  EXPECT_TRUE(IsSha256Hex(std::string(64, '0')));
  EXPECT_FALSE(IsSha256Hex(std::string(65, '0')));
}

}  // namespace
}  // namespace nodeagent::image
