#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>

#include "services/image/core/busybox_image.h"

namespace nodeagent::image {
namespace {

struct Entry {
  unsigned int type = 0;
  int mode = 0;
  int64_t uid = -1;
  int64_t mtime = 0;
  std::string symlink;
  std::string content;
};

std::map<std::string, Entry> ReadTar(const std::string& tar) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  EXPECT_EQ(archive_read_open_memory(a.get(), tar.data(), tar.size()), ARCHIVE_OK);
  std::map<std::string, Entry> entries;
  archive_entry* entry = nullptr;
  while (archive_read_next_header(a.get(), &entry) == ARCHIVE_OK) {
    Entry e;
    e.type = archive_entry_filetype(entry);
    e.mode = archive_entry_perm(entry);
    e.uid = archive_entry_uid(entry);
    e.mtime = archive_entry_mtime(entry);
    if (archive_entry_symlink(entry) != nullptr) e.symlink = archive_entry_symlink(entry);
    e.content.resize(static_cast<size_t>(archive_entry_size(entry)));
    if (!e.content.empty()) archive_read_data(a.get(), e.content.data(), e.content.size());
    std::string path = archive_entry_pathname(entry);
    if (path.size() > 1 && path.back() == '/') path.pop_back();  // Writers mark directories.
    entries[path] = e;
  }
  return entries;
}

class BusyboxTarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_busybox_ = ::testing::TempDir() + "/fake-busybox";
    std::ofstream(fake_busybox_) << "\x7f"
                                    "ELF not really busybox";
  }
  void TearDown() override { std::remove(fake_busybox_.c_str()); }

  std::string fake_busybox_;
  const std::vector<std::string> applets_ = {"bin/sh", "usr/bin/wget", "sbin/init",
                                             "usr/libexec/odd/applet", "linuxrc"};
  const absl::Time mtime_ = absl::FromUnixSeconds(1700000000);
};

TEST_F(BusyboxTarTest, LaysOutAMinimalRootfs) {
  absl::StatusOr<std::string> tar = BuildBusyboxRootfsTar(fake_busybox_, applets_, mtime_);
  ASSERT_TRUE(tar.ok()) << tar.status();
  std::map<std::string, Entry> entries = ReadTar(*tar);

  for (const char* dir : {"bin", "sbin", "usr/bin", "usr/sbin", "dev", "etc", "proc", "sys", "home",
                          "var/tmp", "usr/libexec", "usr/libexec/odd"}) {
    ASSERT_TRUE(entries.contains(dir)) << dir;
    EXPECT_EQ(entries[dir].type, static_cast<unsigned int>(AE_IFDIR)) << dir;
  }
  EXPECT_EQ(entries["tmp"].mode, 01777);
  EXPECT_EQ(entries["var/tmp"].mode, 01777);
  EXPECT_EQ(entries["root"].mode, 0700);

  EXPECT_EQ(entries["bin/busybox"].type, static_cast<unsigned int>(AE_IFREG));
  EXPECT_EQ(entries["bin/busybox"].mode, 0755);
  EXPECT_EQ(entries["bin/busybox"].content,
            "\x7f"
            "ELF not really busybox");
  for (const std::string& applet : applets_) {
    EXPECT_EQ(entries[applet].type, static_cast<unsigned int>(AE_IFLNK)) << applet;
    EXPECT_EQ(entries[applet].symlink, "/bin/busybox") << applet;
  }
  EXPECT_THAT(entries["etc/passwd"].content, ::testing::HasSubstr("root:x:0:0:root:/root:/bin/sh"));
  EXPECT_THAT(entries["etc/passwd"].content, ::testing::HasSubstr("nobody:x:65534"));
  EXPECT_THAT(entries["etc/group"].content, ::testing::HasSubstr("root:x:0:"));
  EXPECT_THAT(entries["etc/hosts"].content, ::testing::HasSubstr("127.0.0.1\tlocalhost"));
  for (const auto& [path, entry] : entries) {
    EXPECT_EQ(entry.uid, 0) << path;
    EXPECT_EQ(entry.mtime, absl::ToUnixSeconds(mtime_)) << path;
  }
}

TEST_F(BusyboxTarTest, SameInputSameBytes) {
  absl::StatusOr<std::string> first = BuildBusyboxRootfsTar(fake_busybox_, applets_, mtime_);
  absl::StatusOr<std::string> second = BuildBusyboxRootfsTar(fake_busybox_, applets_, mtime_);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  absl::StatusOr<std::string> later =
      BuildBusyboxRootfsTar(fake_busybox_, applets_, mtime_ + absl::Seconds(1));
  EXPECT_NE(*first, *later);
}

TEST_F(BusyboxTarTest, MissingBinaryIsAnError) {
  EXPECT_EQ(BuildBusyboxRootfsTar("/nonexistent/busybox", applets_, mtime_).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace nodeagent::image
