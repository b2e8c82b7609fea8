#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/image/core/layer_unpack.h"

namespace nodeagent::image {
namespace {

TEST(SanitizeEntryPathTest, MakesPathsRelative) {
  EXPECT_EQ(*SanitizeEntryPath("etc/passwd"), "etc/passwd");
  EXPECT_EQ(*SanitizeEntryPath("/etc/passwd"), "etc/passwd");
  EXPECT_EQ(*SanitizeEntryPath("///etc//passwd"), "etc/passwd");
  EXPECT_EQ(*SanitizeEntryPath("./etc/./passwd"), "etc/passwd");
  EXPECT_EQ(*SanitizeEntryPath("usr/bin/"), "usr/bin");
  EXPECT_EQ(*SanitizeEntryPath("..."), "...");
  EXPECT_EQ(*SanitizeEntryPath("a/..b/c.."), "a/..b/c..");
}

TEST(SanitizeEntryPathTest, RootIsEmpty) {
  EXPECT_EQ(*SanitizeEntryPath("./"), "");
  EXPECT_EQ(*SanitizeEntryPath("/"), "");
  EXPECT_EQ(*SanitizeEntryPath("."), "");
  EXPECT_EQ(*SanitizeEntryPath(""), "");
}

TEST(SanitizeEntryPathTest, RefusesDotDot) {
  for (const char* path : {"..", "../x", "a/../../x", "/../etc/passwd", "a/b/..", "./.."}) {
    absl::StatusOr<std::string> sanitized = SanitizeEntryPath(path);
    EXPECT_EQ(sanitized.status().code(), absl::StatusCode::kInvalidArgument) << path;
  }
  EXPECT_EQ(SanitizeEntryPath("../x").status().message(), "entry \"../x\": path escapes the layer");
}

}  // namespace
}  // namespace nodeagent::image
