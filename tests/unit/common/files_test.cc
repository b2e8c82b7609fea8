#include "services/common/linux/files.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services/common/status_macros.h"

namespace nodeagent {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodeagent-files-test-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override { EXPECT_TRUE(linux::RemoveTree(dir_).ok()); }
  std::string dir_;
};

TEST_F(FilesTest, WriteFileAtomicReplacesWholeAndLeavesNoTemp) {
  std::string path = dir_ + "/state.json";
  ASSERT_TRUE(linux::WriteFileAtomic(path, "first", 0600).ok());
  ASSERT_TRUE(linux::WriteFileAtomic(path, "second", 0600).ok());
  EXPECT_EQ(*linux::ReadFile(path), "second");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(linux::ListDir(dir_)->size(), 1u);
}

TEST_F(FilesTest, ErrorsNameThePath) {
  auto missing = linux::ReadFile(dir_ + "/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir_ + "/nope"), absl::string_view::npos);
  ASSERT_TRUE(linux::WriteFileAtomic(dir_ + "/f", "x").ok());
  absl::Status into_file = linux::MakeDirs(dir_ + "/f/sub");
  EXPECT_FALSE(into_file.ok());
  EXPECT_NE(into_file.message().find("/f/sub"), absl::string_view::npos);
}

TEST_F(FilesTest, MakeDirsAndRemoveTree) {
  ASSERT_TRUE(linux::MakeDirs(dir_ + "/a/b/c").ok());
  ASSERT_TRUE(linux::MakeDirs(dir_ + "/a/b/c").ok());  // Idempotent.
  ASSERT_TRUE(linux::WriteFileAtomic(dir_ + "/a/b/c/file", "data").ok());
  ASSERT_EQ(symlink("/etc", (dir_ + "/a/link-out").c_str()), 0);
  ASSERT_TRUE(linux::RemoveTree(dir_ + "/a").ok());
  EXPECT_FALSE(linux::PathExists(dir_ + "/a"));
  EXPECT_TRUE(linux::PathExists("/etc/hostname") || linux::PathExists("/etc/passwd"));
  EXPECT_TRUE(linux::RemoveTree(dir_ + "/never-was").ok());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  NA_ASSIGN_OR_RETURN(int half, Half(x));
  NA_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(StatusMacros, PropagateAndAnnotate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = Annotate(absl::NotFoundError("gone"), "prepare rootfs c1");
  EXPECT_EQ(s.message(), "prepare rootfs c1: gone");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

}  // namespace
}  // namespace nodeagent
