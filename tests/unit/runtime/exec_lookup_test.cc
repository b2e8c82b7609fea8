#include "services/runtime/linux/exec_lookup.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "services/common/linux/files.h"

namespace nodeagent::runtime {
namespace {

class LookPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/exec-lookup-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(linux::MakeDirs(dir_ + "/a").ok());
    ASSERT_TRUE(linux::MakeDirs(dir_ + "/b").ok());
    ASSERT_TRUE(linux::MakeDirs(dir_ + "/b/subdir").ok());
    Touch(dir_ + "/a/plain", 0644);
    Touch(dir_ + "/b/plain", 0755);
    Touch(dir_ + "/b/tool", 0700);
  }
  void TearDown() override { EXPECT_TRUE(linux::RemoveTree(dir_).ok()); }

  static void Touch(const std::string& path, mode_t mode) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, mode);
    ASSERT_GE(fd, 0) << path;
    ::close(fd);
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }

  std::string dir_;
};

TEST_F(LookPathTest, FirstExecutableMatchInPathOrder) {
  std::string path = dir_ + "/a:" + dir_ + "/b";
  // a/plain is not executable: skipped like Go's exec.LookPath does.
  EXPECT_EQ(*LookPath("plain", path), dir_ + "/b/plain");
  EXPECT_EQ(*LookPath("tool", path), dir_ + "/b/tool");
}

TEST_F(LookPathTest, NotFound) {
  auto found = LookPath("nosuch", dir_ + "/a:" + dir_ + "/b");
  EXPECT_EQ(found.status(),
            absl::NotFoundError("exec \"nosuch\": executable file not found in $PATH"));
  EXPECT_EQ(StartErrorExitCode(found.status()), 127);
  // A directory of that name is no command either.
  EXPECT_TRUE(absl::IsNotFound(LookPath("subdir", dir_ + "/b").status()));
}

TEST_F(LookPathTest, PathsWithSlashAreNotSearched) {
  std::string plain = dir_ + "/a/plain";
  auto denied = LookPath(plain, "/bin");
  EXPECT_EQ(denied.status(),
            absl::PermissionDeniedError("exec \"" + plain + "\": permission denied"));
  EXPECT_EQ(StartErrorExitCode(denied.status()), 126);
  EXPECT_EQ(*LookPath(dir_ + "/b/tool", ""), dir_ + "/b/tool");
  EXPECT_TRUE(absl::IsNotFound(LookPath(dir_ + "/nosuch", "").status()));
  EXPECT_TRUE(absl::IsPermissionDenied(LookPath(dir_ + "/b", "").status()));
}

TEST(PathFromEnvTest, LastPathWinsElseDefault) {
  EXPECT_EQ(PathFromEnv({}), kDefaultPath);
  EXPECT_EQ(PathFromEnv({"HOME=/root", "PATHX=/no"}), kDefaultPath);
  EXPECT_EQ(PathFromEnv({"PATH=/one", "A=b", "PATH=/two:/three"}), "/two:/three");
}

TEST(StartErrorExitCodeTest, DockerMeanings) {
  EXPECT_EQ(StartErrorExitCode(ExecErrorStatus("x", ENOENT)), 127);
  EXPECT_EQ(StartErrorExitCode(ExecErrorStatus("x", EACCES)), 126);
  EXPECT_EQ(StartErrorExitCode(ExecErrorStatus("x", ENOEXEC)), 126);
  // A setup failure is the runtime's, even when its code is NOT_FOUND.
  EXPECT_EQ(StartErrorExitCode(absl::NotFoundError("mount \"/src\" -> \"/dst\": No such file")),
            125);
  EXPECT_FALSE(IsExecError(absl::OkStatus()));
}

}  // namespace
}  // namespace nodeagent::runtime
