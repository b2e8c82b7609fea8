#include "services/image/core/reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/image/core/digest.h"

namespace nodeagent::image {
namespace {

using ::testing::HasSubstr;

TEST(ParseImageNameTest, ImpliesLatest) {
  EXPECT_EQ(*ParseImageName("busybox"), (ImageName{"busybox", "latest"}));
  EXPECT_EQ(ParseImageName("busybox")->ToString(), "busybox:latest");
}

TEST(ParseImageNameTest, Tags) {
  EXPECT_EQ(*ParseImageName("busybox:1.35"), (ImageName{"busybox", "1.35"}));
  EXPECT_EQ(*ParseImageName("my-app:v1_2.3-rc"), (ImageName{"my-app", "v1_2.3-rc"}));
  EXPECT_EQ(*ParseImageName("library/debian:Bookworm"), (ImageName{"library/debian", "Bookworm"}));
}

TEST(ParseImageNameTest, RegistryHostWithPort) {
  EXPECT_EQ(*ParseImageName("localhost:5000/team/app"),
            (ImageName{"localhost:5000/team/app", "latest"}));
  EXPECT_EQ(*ParseImageName("registry.example.com/app:2"),
            (ImageName{"registry.example.com/app", "2"}));
  EXPECT_EQ(*ParseImageName("Registry.Example.com:443/a/b:c"),
            (ImageName{"Registry.Example.com:443/a/b", "c"}));
}

TEST(ParseImageNameTest, Separators) {
  EXPECT_TRUE(ParseImageName("a.b_c__d-e---f").ok());
  EXPECT_FALSE(ParseImageName("a___b").ok());
  EXPECT_FALSE(ParseImageName("-a").ok());
  EXPECT_FALSE(ParseImageName("a-").ok());
  EXPECT_FALSE(ParseImageName("a..b").ok());
}

TEST(ParseImageNameTest, Rejects) {
  for (const char* bad : {"", ":", "busybox:", ":tag", "Busybox", "a//b", "a/", "/a", "a b",
                          "a:-tag", "a:.tag", "a:t/ag", "bad_host:5000x/app", "a:b:c"}) {
    absl::StatusOr<ImageName> name = ParseImageName(bad);
    EXPECT_EQ(name.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ParseImageName("a:" + std::string(129, 't')).ok());
  EXPECT_TRUE(ParseImageName("a:" + std::string(128, 't')).ok());
  EXPECT_FALSE(ParseImageName(std::string(256, 'a')).ok());
}

TEST(ParseImageNameTest, MessagesSayWhy) {
  EXPECT_THAT(ParseImageName("Busybox").status().message(),
              HasSubstr("image \"Busybox\": invalid reference format: repository name must be "
                        "lowercase"));
  EXPECT_THAT(ParseImageName("busybox@sha256:" + std::string(64, 'a')).status().message(),
              HasSubstr("not supported yet"));
}

class ResolveTest : public ::testing::Test {
 protected:
  static std::string Id(char first, char fill) {
    std::string hex(64, fill);
    hex[0] = first;
    return Sha256Digest(hex);
  }
  const std::string busybox_ = Sha256Digest("abcd1111" + std::string(56, '0'));
  const std::string other_ = Sha256Digest("abcd2222" + std::string(56, '0'));
  const std::string third_ = Sha256Digest("ef01" + std::string(60, '9'));
  std::map<std::string, std::string> names_ = {
      {"busybox:latest", busybox_}, {"busybox:old", other_}, {"ef01:latest", busybox_}};
  std::set<std::string> ids_ = {busybox_, other_, third_};
};

TEST_F(ResolveTest, Names) {
  EXPECT_EQ(*ResolveImageReference("busybox", names_, ids_), busybox_);
  EXPECT_EQ(*ResolveImageReference("busybox:latest", names_, ids_), busybox_);
  EXPECT_EQ(*ResolveImageReference("busybox:old", names_, ids_), other_);
}

TEST_F(ResolveTest, FullIdAndPrefixes) {
  EXPECT_EQ(*ResolveImageReference(other_, names_, ids_), other_);
  EXPECT_EQ(*ResolveImageReference("abcd2", names_, ids_), other_);
  EXPECT_EQ(*ResolveImageReference("sha256:abcd1", names_, ids_), busybox_);
  EXPECT_EQ(*ResolveImageReference(other_.substr(7), names_, ids_), other_);
}

TEST_F(ResolveTest, NameWinsOverIdPrefix) {
  // "ef01" is both a name and a prefix of third_; like Docker, the name wins.
  EXPECT_EQ(*ResolveImageReference("ef01", names_, ids_), busybox_);
  EXPECT_EQ(*ResolveImageReference("sha256:ef01", names_, ids_), third_);
}

TEST_F(ResolveTest, AmbiguousPrefix) {
  absl::StatusOr<std::string> id = ResolveImageReference("abcd", names_, ids_);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("image \"abcd\": ambiguous id prefix (2 images"));
}

TEST_F(ResolveTest, ShortPrefixIsNotAnId) {
  EXPECT_EQ(ResolveImageReference("abc", names_, ids_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveImageReference("sha256:abc", names_, ids_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ResolveTest, NotFound) {
  absl::StatusOr<std::string> id = ResolveImageReference("nope", names_, ids_);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(id.status().message(), "image \"nope\": not found");
  EXPECT_EQ(ResolveImageReference("busybox:missing", names_, ids_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveImageReference("9999", names_, ids_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ResolveTest, Malformed) {
  EXPECT_EQ(ResolveImageReference("Bad Name", names_, ids_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveImageReference("", names_, ids_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveImageReference("sha256:XYZ1", names_, ids_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SnapshotKeyTest, Valid) {
  for (const char* key : {"c1", "abc_DEF-1.2", "0123456789abcdef", "_x"}) {
    EXPECT_TRUE(ValidateSnapshotKey(key).ok()) << key;
  }
  EXPECT_TRUE(ValidateSnapshotKey(std::string(128, 'k')).ok());
}

TEST(SnapshotKeyTest, Invalid) {
  for (const char* key : {"", ".", "..", ".hidden", "-flag", "a/b", "../x", "a b", "ä", "a:b"}) {
    absl::Status status = ValidateSnapshotKey(key);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << key;
  }
  EXPECT_THAT(ValidateSnapshotKey(std::string(129, 'k')).message(), HasSubstr("longer than 128"));
  EXPECT_THAT(ValidateSnapshotKey("a/b").message(), HasSubstr("snapshot key \"a/b\""));
}

}  // namespace
}  // namespace nodeagent::image
