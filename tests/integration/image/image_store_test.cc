// ImageStore against the real filesystem and kernel (overlayfs), as root.

#include "services/image/core/image_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <thread>

#include "absl/strings/str_join.h"
#include "services/common/linux/files.h"
#include "services/image/core/busybox_image.h"
#include "services/image/core/digest.h"
#include "services/image/core/host_ops.h"
#include "tests/integration/image/test_util.h"

namespace nodeagent::image {
namespace {

using testing::CountEntries;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::ReadFileOrDie;
using testing::RunInPrivateMountNamespace;
using testing::ScopedTempDir;
using testing::SourceOf;
using ::testing::StartsWith;
using testing::StatOrDie;
using testing::TarBuilder;

constexpr char kBusybox[] = "/bin/busybox";

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests run as root";
    root_ = tmp_.path() + "/store";
    victim_ = tmp_.path() + "/victim";
    ASSERT_EQ(::mkdir(victim_.c_str(), 0755), 0);
    ASSERT_TRUE(linux::WriteFileAtomic(victim_ + "/keep", "precious").ok());
    OpenStore();
  }

  void TearDown() override {
    store_.reset();
    // Nothing of ours may stay mounted on the host.
    EXPECT_THAT(testing::HostMountInfo(), ::testing::Not(HasSubstr(tmp_.path())));
  }

  void OpenStore() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<ImageStore>> store = ImageStore::Open({.root = root_});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  absl::StatusOr<Image> Import(const std::string& name, const std::string& tar,
                               const ImageConfig& config = {}, const ImportOptions& options = {}) {
    return store_->ImportRootfsTar(name, config, SourceOf(tar, 4096), options);
  }

  std::string LayerOf(const Image& image) { return store_->LayerDir(image.layers.at(0)); }

  // A failed import keeps nothing: no layer, nothing in tmp/, no image.
  void ExpectNothingKept(size_t layers_before = 0) {
    EXPECT_EQ(CountEntries(root_ + "/layers"), layers_before);
    EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
    EXPECT_EQ(CountEntries(root_ + "/l"), layers_before);
  }

  void ExpectVictimUntouched() {
    EXPECT_EQ(CountEntries(victim_), 1u);
    EXPECT_EQ(ReadFileOrDie(victim_ + "/keep"), "precious");
    EXPECT_EQ(StatOrDie(victim_).st_mode & 07777, 0755u);
  }

  ScopedTempDir tmp_{"nodeagent-image-test"};
  std::string root_;
  std::string victim_;
  std::unique_ptr<ImageStore> store_;
};

// --- import ---------------------------------------------------------------------------------

TEST_F(ImageStoreTest, ImportsPlainTarWithMetadata) {
  std::string tar =
      TarBuilder()
          .Dir("./")
          .Dir("etc", {.mode = 0750, .uid = 0, .gid = 42})
          .File("etc/motd", "hello\n", {.mode = 0640, .uid = 1234, .gid = 42, .mtime = 1600000000})
          .File("bin/tool", "#!/bin/sh\n", {.mode = 04755})
          .Symlink("bin/sh", "/bin/busybox")
          .Hardlink("etc/motd.link", "etc/motd")
          .Fifo("run/fifo")
          .NextXattr("user.origin", "test")
          .File("with-xattr", "x")
          .Finish();
  ImageConfig config;
  config.cmd = {"/bin/tool"};
  config.env = {"A=1"};
  absl::StatusOr<Image> image = Import("plain", tar, config);
  ASSERT_TRUE(image.ok()) << image.status();

  EXPECT_THAT(image->names, ElementsAre("plain:latest"));
  EXPECT_THAT(image->id, StartsWith("sha256:"));
  EXPECT_THAT(image->layers, ElementsAre("sha256:" + Sha256Hex(tar)));
  EXPECT_GT(image->size_bytes, 0);
  EXPECT_EQ(image->config, config);

  const std::string layer = LayerOf(*image);
  EXPECT_EQ(StatOrDie(layer).st_mode & 07777, 0755u);
  struct stat motd = StatOrDie(layer + "/etc/motd");
  EXPECT_EQ(motd.st_mode & 07777, 0640u);
  EXPECT_EQ(motd.st_uid, 1234u);
  EXPECT_EQ(motd.st_gid, 42u);
  EXPECT_EQ(motd.st_mtime, 1600000000);
  EXPECT_EQ(ReadFileOrDie(layer + "/etc/motd"), "hello\n");
  struct stat etc = StatOrDie(layer + "/etc");
  EXPECT_EQ(etc.st_mode & 07777, 0750u);
  EXPECT_EQ(etc.st_gid, 42u);
  EXPECT_EQ(StatOrDie(layer + "/bin/tool").st_mode & 07777, 04755u);
  EXPECT_EQ(ReadLink(layer + "/bin/sh"), "/bin/busybox");
  EXPECT_EQ(StatOrDie(layer + "/etc/motd.link").st_ino, motd.st_ino);
  EXPECT_TRUE(S_ISFIFO(StatOrDie(layer + "/run/fifo").st_mode));
  char value[16] = {};
  ASSERT_EQ(::lgetxattr((layer + "/with-xattr").c_str(), "user.origin", value, sizeof(value)), 4);
  EXPECT_STREQ(value, "test");

  // Every form of reference finds it.
  for (const std::string& ref : {std::string("plain"), std::string("plain:latest"), image->id,
                                 image->id.substr(7), image->id.substr(7, 12)}) {
    absl::StatusOr<Image> found = store_->GetImage(ref);
    ASSERT_TRUE(found.ok()) << ref << ": " << found.status();
    EXPECT_EQ(found->id, image->id);
  }
  ASSERT_EQ(store_->ListImages().size(), 1u);
  EXPECT_EQ(store_->ListImages()[0].id, image->id);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
}

class CompressedImportTest : public ImageStoreTest,
                             public ::testing::WithParamInterface<testing::Compression> {};

TEST_P(CompressedImportTest, DiffIdIsTheUncompressedTarAndTheLayerIsShared) {
  auto build = [](testing::Compression compression) {
    return TarBuilder(compression)
        .File("etc/os-release", "ID=test\n")
        .File("big", std::string(300000, 'z'))
        .Finish();
  };
  const std::string plain = build(testing::Compression::kNone);
  const std::string compressed = build(GetParam());
  ASSERT_NE(plain, compressed);

  absl::StatusOr<Image> from_compressed = Import("packed", compressed);
  ASSERT_TRUE(from_compressed.ok()) << from_compressed.status();
  EXPECT_THAT(from_compressed->layers, ElementsAre("sha256:" + Sha256Hex(plain)));
  EXPECT_EQ(ReadFileOrDie(LayerOf(*from_compressed) + "/big"), std::string(300000, 'z'));

  absl::StatusOr<Image> from_plain = Import("plain", plain);
  ASSERT_TRUE(from_plain.ok()) << from_plain.status();
  EXPECT_EQ(from_plain->layers, from_compressed->layers);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Compressions, CompressedImportTest,
                         ::testing::Values(testing::Compression::kGzip,
                                           testing::Compression::kBzip2, testing::Compression::kXz,
                                           testing::Compression::kZstd),
                         [](const ::testing::TestParamInfo<testing::Compression>& param) {
                           switch (param.param) {
                             case testing::Compression::kGzip:
                               return "Gzip";
                             case testing::Compression::kBzip2:
                               return "Bzip2";
                             case testing::Compression::kXz:
                               return "Xz";
                             case testing::Compression::kZstd:
                               return "Zstd";
                             case testing::Compression::kNone:
                               break;
                           }
                           return "None";
                         });

TEST_F(ImageStoreTest, IdenticalImportReusesTheLayer) {
  std::string tar = TarBuilder().File("a", "same bytes").Finish();
  absl::StatusOr<Image> first = Import("first", tar);
  absl::StatusOr<Image> second = Import("second", tar);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->layers, second->layers);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 1u);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_EQ(store_->ListImages().size(), 2u);

  // Same content and same creation time: the same image, with both names.
  ImportOptions fixed;
  fixed.created = absl::FromUnixSeconds(1700000000);
  absl::StatusOr<Image> a = Import("a", tar, {}, fixed);
  absl::StatusOr<Image> b = Import("b:v1", tar, {}, fixed);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_THAT(b->names, ElementsAre("a:latest", "b:v1"));
}

TEST_F(ImageStoreTest, ConcurrentImportsOfOneLayer) {
  std::string tar = TarBuilder().File("data", std::string(200000, 'c')).Finish();
  std::vector<absl::StatusOr<Image>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = Import("img" + std::to_string(i), tar); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& result : results) ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(CountEntries(root_ + "/layers"), 1u);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_EQ(store_->ListImages().size(), 4u);
}

TEST_F(ImageStoreTest, ANameMovesToTheNewestImport) {
  absl::StatusOr<Image> old = Import("app:1", TarBuilder().File("v", "1").Finish());
  absl::StatusOr<Image> fresh = Import("app:1", TarBuilder().File("v", "2").Finish());
  ASSERT_TRUE(old.ok() && fresh.ok());
  EXPECT_EQ(store_->GetImage("app:1")->id, fresh->id);
  EXPECT_THAT(store_->GetImage(old->id)->names, IsEmpty());
  EXPECT_THAT(fresh->names, ElementsAre("app:1"));
}

TEST_F(ImageStoreTest, AnUnnamedImportIsFoundById) {
  absl::StatusOr<Image> image = Import("", TarBuilder().File("f", "x").Finish());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_THAT(image->names, IsEmpty());
  EXPECT_TRUE(store_->GetImage(image->id).ok());
}

TEST_F(ImageStoreTest, BadNameReadsNothing) {
  bool read = false;
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    read = true;
    return absl::string_view();
  };
  absl::StatusOr<Image> image = store_->ImportRootfsTar("Bad:Name:", {}, source);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(image.status().message()), StartsWith("import: image \"Bad:Name:\""));
  EXPECT_FALSE(read);
}

TEST_F(ImageStoreTest, AbsolutePathsLandInsideTheLayer) {
  absl::StatusOr<Image> image =
      Import("abs", TarBuilder().File("/nodeagent-abs-test/inside", "x").Finish());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(ReadFileOrDie(LayerOf(*image) + "/nodeagent-abs-test/inside"), "x");
  EXPECT_FALSE(linux::PathExists("/nodeagent-abs-test"));
}

TEST_F(ImageStoreTest, OverlayXattrsFromATarAreDropped) {
  absl::StatusOr<Image> image = Import("x", TarBuilder()
                                                .NextXattr("trusted.overlay.opaque", "y")
                                                .NextXattr("user.kept", "1")
                                                .Dir("d")
                                                .Finish());
  ASSERT_TRUE(image.ok()) << image.status();
  char value[8];
  std::string d = LayerOf(*image) + "/d";
  EXPECT_LT(::lgetxattr(d.c_str(), "trusted.overlay.opaque", value, sizeof(value)), 0);
  EXPECT_EQ(::lgetxattr(d.c_str(), "user.kept", value, sizeof(value)), 1);
}

// --- hostile input --------------------------------------------------------------------------

struct HostileCase {
  const char* name;
  std::function<std::string(const std::string& victim)> build;
  const char* message;
};

class HostileTarTest : public ImageStoreTest, public ::testing::WithParamInterface<HostileCase> {};

TEST_P(HostileTarTest, IsRejectedAndKeepsNothing) {
  struct stat passwd_before = StatOrDie("/etc/passwd");
  absl::StatusOr<Image> image = Import("evil", GetParam().build(victim_));
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << image.status();
  EXPECT_THAT(std::string(image.status().message()), StartsWith("import \"evil:latest\": "));
  EXPECT_THAT(image.status().message(), HasSubstr(GetParam().message));
  ExpectNothingKept();
  ExpectVictimUntouched();
  EXPECT_THAT(store_->ListImages(), IsEmpty());
  struct stat passwd_after = StatOrDie("/etc/passwd");
  EXPECT_EQ(passwd_after.st_nlink, passwd_before.st_nlink);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HostileTarTest,
    ::testing::Values(
        HostileCase{"DotDot",
                    [](const std::string&) {
                      return TarBuilder().File("ok", "1").File("../x", "escaped").Finish();
                    },
                    "entry \"../x\": path escapes the layer"},
        HostileCase{"DeepDotDot",
                    [](const std::string& victim) {
                      return TarBuilder()
                          .File("a/../../../../../../../.." + victim + "/pwned", "x")
                          .Finish();
                    },
                    "path escapes the layer"},
        HostileCase{"AbsoluteSymlinkThenWriteThroughIt",
                    [](const std::string& victim) {
                      return TarBuilder().Symlink("evil", victim).File("evil/pwned", "x").Finish();
                    },
                    "entry \"evil/pwned\": "},
        HostileCase{"RelativeSymlinkThenWriteThroughIt",
                    [](const std::string& victim) {
                      return TarBuilder()
                          .Dir("a")
                          .Symlink("a/evil", "../../../../../../../.." + victim)
                          .File("a/evil/keep", "overwritten")
                          .Finish();
                    },
                    "entry \"a/evil/keep\": "},
        HostileCase{"SymlinkThenDirectoryThroughIt",
                    [](const std::string& victim) {
                      return TarBuilder().Symlink("evil", victim).Dir("evil/sub").Finish();
                    },
                    "entry \"evil/sub"},
        HostileCase{"HardlinkToHostFile",
                    [](const std::string&) {
                      return TarBuilder().Hardlink("passwd", "/etc/passwd").Finish();
                    },
                    "hardlink target \"/etc/passwd\" is not in the layer"},
        HostileCase{"HardlinkWithDotDot",
                    [](const std::string&) {
                      return TarBuilder().Hardlink("passwd", "../../../../etc/passwd").Finish();
                    },
                    "escapes the layer"},
        HostileCase{
            "HardlinkThroughSymlink",
            [](const std::string&) {
              return TarBuilder().Symlink("etc", "/etc").Hardlink("passwd", "etc/passwd").Finish();
            },
            "hardlink target \"etc/passwd\" resolves through a symlink"}),
    [](const ::testing::TestParamInfo<HostileCase>& param) { return param.param.name; });

TEST_F(ImageStoreTest, DirectoryReplacedBySymlinkNeverChangesTheTarget) {
  // A directory's mode and times are applied at the end; by then the path is a symlink to
  // the victim. Whatever libarchive decides, the victim must not change.
  struct stat before = StatOrDie(victim_);
  absl::StatusOr<Image> image =
      Import("swap", TarBuilder()
                         .Dir("d", {.mode = 0700, .uid = 0, .gid = 0, .mtime = 1})
                         .Symlink("d", victim_)
                         .Finish());
  struct stat after = StatOrDie(victim_);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ExpectVictimUntouched();
  if (image.ok()) {
    EXPECT_EQ(ReadLink(LayerOf(*image) + "/d"), victim_);
  } else {
    ExpectNothingKept();
  }
}

TEST_F(ImageStoreTest, DirectoryEntryOverASymlinkReplacesTheSymlink) {
  // The directory's owner, mode and times must land on a directory of the layer, never on
  // what a symlink of the same name points to.
  struct stat before = StatOrDie(victim_);
  absl::StatusOr<Image> image =
      Import("over", TarBuilder()
                         .Symlink("d", victim_)
                         .Dir("d", {.mode = 0700, .uid = 0, .gid = 0, .mtime = 1})
                         .File("d/inside", "x")
                         .Finish());
  struct stat after = StatOrDie(victim_);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ExpectVictimUntouched();
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_TRUE(IsDirectory(LayerOf(*image) + "/d"));
  EXPECT_EQ(ReadFileOrDie(LayerOf(*image) + "/d/inside"), "x");
}

TEST_F(ImageStoreTest, DirectoryReplacedBySymlinkThenWrittenThroughIsRejected) {
  // "d" is a known directory until the symlink entry replaces it; what comes after must not
  // be written through the symlink.
  absl::StatusOr<Image> image = Import("swap2", TarBuilder()
                                                    .Dir("d")
                                                    .File("d/a", "1")
                                                    .Symlink("e", victim_)
                                                    .Dir("e2")
                                                    .File("e2/b", "2")
                                                    .Finish());
  ASSERT_TRUE(image.ok()) << image.status();
  ExpectVictimUntouched();
  absl::StatusOr<Image> evil = Import(
      "swap3",
      TarBuilder().Dir("d").File("d/a", "1").Symlink("d", victim_).File("d/pwned", "x").Finish());
  ExpectVictimUntouched();
  if (evil.ok()) {
    // libarchive could not replace the non-empty directory: the file went into it.
    EXPECT_TRUE(IsDirectory(LayerOf(*evil) + "/d"));
  } else {
    EXPECT_EQ(evil.status().code(), absl::StatusCode::kInvalidArgument) << evil.status();
  }
}

TEST_F(ImageStoreTest, TruncatedTarIsRejectedNamingTheEntry) {
  std::string tar = TarBuilder().File("small", "s").File("big", std::string(100000, 'b')).Finish();
  absl::StatusOr<Image> image = Import("cut", tar.substr(0, 50000));
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("entry \"big\""));
  ExpectNothingKept();
}

TEST_F(ImageStoreTest, TarCutAtAnEntryBoundaryIsRejected) {
  std::string tar = TarBuilder().File("first", "1").File("second", "2").Finish();
  ASSERT_EQ(tar.substr(tar.size() - 1024), std::string(1024, '\0'));
  absl::StatusOr<Image> image = Import("cut", tar.substr(0, tar.size() - 1024));
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(),
              HasSubstr("input is truncated: no end-of-archive blocks after entry \"second\""));
  ExpectNothingKept();
}

TEST_F(ImageStoreTest, EmptyTarMakesAnEmptyLayer) {
  absl::StatusOr<Image> image = Import("nothing", TarBuilder().Finish());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(CountEntries(LayerOf(*image)), 0u);
}

TEST_F(ImageStoreTest, HardlinkToASymlinkLinksTheSymlinkItself) {
  struct stat passwd_before = StatOrDie("/etc/passwd");
  absl::StatusOr<Image> image =
      Import("links", TarBuilder().Symlink("s", "/etc/passwd").Hardlink("h", "s").Finish());
  EXPECT_EQ(StatOrDie("/etc/passwd").st_nlink, passwd_before.st_nlink);
  if (image.ok()) {
    EXPECT_TRUE(S_ISLNK(StatOrDie(LayerOf(*image) + "/h").st_mode));
  } else {
    ExpectNothingKept();
  }
}

TEST_F(ImageStoreTest, TruncatedGzipIsRejected) {
  std::string gz = TarBuilder(testing::Compression::kGzip)
                       .File("noise",
                             [] {
                               std::string s(200000, 0);
                               std::mt19937 rng(7);
                               for (char& c : s) c = static_cast<char>(rng());
                               return s;
                             }())
                       .Finish();
  absl::StatusOr<Image> image = Import("cut", gz.substr(0, gz.size() / 2));
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << image.status();
  ExpectNothingKept();
}

TEST_F(ImageStoreTest, GzipWithABadChecksumIsRejected) {
  std::string gz = TarBuilder(testing::Compression::kGzip).File("f", "some content").Finish();
  // The trailer: CRC32 of the uncompressed data, then its length.
  gz[gz.size() - 8] = static_cast<char>(gz[gz.size() - 8] ^ 0x5a);
  absl::StatusOr<Image> image = Import("crc", gz);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << image.status();
  EXPECT_THAT(image.status().message(), HasSubstr("gzip: checksum mismatch"));
  ExpectNothingKept();
}

TEST_F(ImageStoreTest, ConcatenatedGzipMembersAreOneStream) {
  // gzip -d reads every member; so does the unpacker (and the diff id covers them all).
  std::string first = TarBuilder(testing::Compression::kGzip).File("one", "1").Finish();
  std::string second = TarBuilder(testing::Compression::kGzip).File("two", "2").Finish();
  absl::StatusOr<Image> both = Import("members", first + second);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(ReadFileOrDie(LayerOf(*both) + "/one"), "1");
  absl::StatusOr<Image> alone = Import("member", first);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_NE(both->layers.at(0), alone->layers.at(0));
  // Zero padding after the last member is ignored (gzip -d does the same).
  absl::StatusOr<Image> padded = Import("padded", first + std::string(1000, '\0'));
  ASSERT_TRUE(padded.ok()) << padded.status();
  EXPECT_EQ(padded->layers.at(0), alone->layers.at(0));
  // A member cut short is an error, not the end of the stream.
  absl::StatusOr<Image> cut = Import("cut", first + second.substr(0, second.size() - 4));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument) << cut.status();
}

TEST_F(ImageStoreTest, GarbageIsNotATar) {
  std::string garbage(20000, 0);
  std::mt19937 rng(42);
  for (char& c : garbage) c = static_cast<char>(rng());
  absl::StatusOr<Image> image = Import("junk", garbage);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("not a tar archive"));
  ExpectNothingKept();
}

TEST_F(ImageStoreTest, EmptyInputIsRejected) {
  absl::StatusOr<Image> image = Import("empty", "");
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(image.status().message(), HasSubstr("input is empty"));
  ExpectNothingKept();
}

TEST_F(ImageStoreTest, SourceErrorAbortsTheImport) {
  std::string tar = TarBuilder().File("a", std::string(100000, 'a')).Finish();
  size_t calls = 0;
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    if (++calls > 2) return absl::CancelledError("client went away");
    return absl::string_view(tar).substr((calls - 1) * 4096, 4096);
  };
  absl::StatusOr<Image> image = store_->ImportRootfsTar("gone", {}, source);
  EXPECT_EQ(image.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(image.status().message(), HasSubstr("client went away"));
  ExpectNothingKept();
}

// --- built-in busybox -----------------------------------------------------------------------

TEST_F(ImageStoreTest, BuildsTheBusyboxImage) {
  if (!linux::PathExists(kBusybox)) GTEST_SKIP() << "busybox-static is not installed";
  ASSERT_TRUE(EnsureBusyboxImage(*store_, kBusybox).ok());
  absl::StatusOr<Image> image = store_->GetImage("busybox");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_THAT(image->names, ElementsAre("busybox:latest"));
  EXPECT_THAT(image->config.cmd, ElementsAre("sh"));
  EXPECT_THAT(image->config.env,
              ElementsAre("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  const std::string layer = LayerOf(*image);
  EXPECT_EQ(StatOrDie(layer + "/bin/busybox").st_size, StatOrDie(kBusybox).st_size);
  EXPECT_EQ(ReadLink(layer + "/bin/sh"), "/bin/busybox");
  EXPECT_EQ(ReadLink(layer + "/usr/bin/wget"), "/bin/busybox");
  EXPECT_EQ(StatOrDie(layer + "/tmp").st_mode & 07777, 01777u);
  EXPECT_EQ(StatOrDie(layer + "/root").st_mode & 07777, 0700u);
  EXPECT_THAT(ReadFileOrDie(layer + "/etc/passwd"), HasSubstr("root:x:0:0:"));

  // Idempotent, and reproducible in another store.
  ASSERT_TRUE(EnsureBusyboxImage(*store_, kBusybox).ok());
  EXPECT_EQ(store_->ListImages().size(), 1u);
  ScopedTempDir other_root("nodeagent-image-test-other");
  absl::StatusOr<std::unique_ptr<ImageStore>> other = ImageStore::Open({.root = other_root.path()});
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(EnsureBusyboxImage(**other, kBusybox).ok());
  EXPECT_EQ((*other)->GetImage("busybox")->id, image->id);
}

TEST_F(ImageStoreTest, MissingBusyboxIsNotAnError) {
  EXPECT_TRUE(EnsureBusyboxImage(*store_, tmp_.path() + "/no-busybox").ok());
  EXPECT_THAT(store_->ListImages(), IsEmpty());
}

// --- store lifecycle ------------------------------------------------------------------------

TEST_F(ImageStoreTest, ReopenKeepsImagesAndSnapshotsAndRemovesDebris) {
  absl::StatusOr<Image> image = Import("keep", TarBuilder().File("f", "x").Finish());
  ASSERT_TRUE(image.ok());
  ASSERT_TRUE(store_->PrepareSnapshot("c1", "keep").ok());
  // What a crash leaves: a half-unpacked import and a snapshot directory without its record.
  ASSERT_TRUE(linux::MakeDirs(root_ + "/tmp/import-crashed/usr/lib").ok());
  ASSERT_TRUE(linux::MakeDirs(root_ + "/snapshots/half/upper").ok());

  OpenStore();
  ASSERT_EQ(store_->ListImages().size(), 1u);
  EXPECT_EQ(store_->ListImages()[0].id, image->id);
  EXPECT_EQ(store_->ListImages()[0].config, image->config);
  EXPECT_EQ(store_->ListImages()[0].size_bytes, image->size_bytes);
  std::vector<Snapshot> snapshots = store_->ListSnapshots();
  ASSERT_EQ(snapshots.size(), 1u);
  EXPECT_EQ(snapshots[0].key, "c1");
  EXPECT_EQ(snapshots[0].image_id, image->id);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_FALSE(linux::PathExists(root_ + "/snapshots/half"));
}

TEST_F(ImageStoreTest, OneProcessPerStore) {
  absl::StatusOr<std::unique_ptr<ImageStore>> second = ImageStore::Open({.root = root_});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another process uses this store"));
}

TEST_F(ImageStoreTest, CorruptIndexRefusesToOpen) {
  ASSERT_TRUE(Import("x", TarBuilder().File("f", "x").Finish()).ok());
  store_.reset();
  ASSERT_TRUE(linux::WriteFileAtomic(root_ + "/images.json", "{\"version\": 1, \"imag").ok());
  absl::StatusOr<std::unique_ptr<ImageStore>> store = ImageStore::Open({.root = root_});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("is corrupt"));
}

TEST_F(ImageStoreTest, RelativeRootIsRefused) {
  EXPECT_EQ(ImageStore::Open({.root = "relative/store"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- snapshots ------------------------------------------------------------------------------

TEST_F(ImageStoreTest, PrepareSnapshotErrorsCreateNothing) {
  ASSERT_TRUE(Import("img", TarBuilder().File("f", "x").Finish()).ok());

  absl::StatusOr<PreparedSnapshot> bad_key = store_->PrepareSnapshot("../escape", "img");
  EXPECT_EQ(bad_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_key.status().message(), HasSubstr("snapshot key \"../escape\""));

  absl::StatusOr<PreparedSnapshot> no_image = store_->PrepareSnapshot("c1", "nope");
  EXPECT_EQ(no_image.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(no_image.status().message(), "image \"nope\": not found");

  EXPECT_EQ(CountEntries(root_ + "/snapshots"), 0u);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_THAT(store_->ListSnapshots(), IsEmpty());

  ASSERT_TRUE(store_->PrepareSnapshot("c1", "img").ok());
  absl::StatusOr<PreparedSnapshot> again = store_->PrepareSnapshot("c1", "img");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "snapshot \"c1\": already exists");
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
}

TEST_F(ImageStoreTest, SnapshotMountWorksAndWritesLandInUpper) {
  absl::StatusOr<Image> image = Import(
      "img", TarBuilder().File("etc/motd", "hello\n").Dir("data").File("data/file", "d").Finish());
  ASSERT_TRUE(image.ok());
  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("c1", "img");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->image.id, image->id);
  EXPECT_EQ(snapshot->upper_dir, root_ + "/snapshots/c1/upper");
  EXPECT_EQ(CountEntries(snapshot->upper_dir), 0u);
  ASSERT_EQ(snapshot->mounts.size(), 1u);
  const Mount& mount = snapshot->mounts[0];
  EXPECT_EQ(mount.type, "overlay");
  EXPECT_EQ(mount.source, "overlay");
  EXPECT_EQ(mount.destination, "");
  ASSERT_EQ(mount.options.size(), 3u);
  EXPECT_THAT(mount.options[0], StartsWith("lowerdir=" + root_ + "/l/"));
  EXPECT_EQ(mount.options[1], "upperdir=" + snapshot->upper_dir);
  EXPECT_EQ(mount.options[2], "workdir=" + root_ + "/snapshots/c1/work");

  const std::string target = tmp_.path() + "/rootfs";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  const std::string data = absl::StrJoin(mount.options, ",");
  int code = RunInPrivateMountNamespace([&] {
    if (::mount(mount.source.c_str(), target.c_str(), mount.type.c_str(), 0, data.c_str()) != 0) {
      std::perror("mount overlay");
      return 1;
    }
    if (ReadFileOrDie(target + "/etc/motd") != "hello\n") return 2;
    if (!linux::WriteFileAtomic(target + "/new.txt", "new").ok()) return 3;
    if (!linux::WriteFileAtomic(target + "/etc/motd", "changed\n").ok()) return 4;
    if (!linux::RemoveTree(target + "/data").ok()) return 5;
    return 0;
  });
  ASSERT_EQ(code, 0);

  // Writes went to the upper directory; the layer (the image) did not change.
  EXPECT_EQ(ReadFileOrDie(snapshot->upper_dir + "/new.txt"), "new");
  EXPECT_EQ(ReadFileOrDie(snapshot->upper_dir + "/etc/motd"), "changed\n");
  struct stat whiteout = StatOrDie(snapshot->upper_dir + "/data");
  EXPECT_TRUE(S_ISCHR(whiteout.st_mode) && whiteout.st_rdev == 0) << "a whiteout hides data/";
  const std::string layer = LayerOf(*image);
  EXPECT_EQ(ReadFileOrDie(layer + "/etc/motd"), "hello\n");
  EXPECT_EQ(ReadFileOrDie(layer + "/data/file"), "d");
  EXPECT_FALSE(linux::PathExists(layer + "/new.txt"));

  ASSERT_TRUE(store_->RemoveSnapshot("c1").ok());
  EXPECT_FALSE(linux::PathExists(root_ + "/snapshots/c1"));
  EXPECT_THAT(store_->ListSnapshots(), IsEmpty());
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_TRUE(linux::PathExists(layer + "/etc/motd"));
}

TEST_F(ImageStoreTest, BusyboxRunsInASnapshot) {
  if (!linux::PathExists(kBusybox)) GTEST_SKIP() << "busybox-static is not installed";
  ASSERT_TRUE(EnsureBusyboxImage(*store_, kBusybox).ok());
  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("bb", "busybox");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  const std::string target = tmp_.path() + "/rootfs";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  const Mount& mount = snapshot->mounts[0];
  const std::string data = absl::StrJoin(mount.options, ",");
  int code = RunInPrivateMountNamespace([&] {
    if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) != 0) return 1;
    if (::chroot(target.c_str()) != 0 || ::chdir("/") != 0) return 2;
    ::execl("/bin/sh", "sh", "-c",
            "echo hi > /hello && test -L /usr/bin/wget && ls /etc >/dev/null",
            static_cast<char*>(nullptr));
    return 3;
  });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ReadFileOrDie(snapshot->upper_dir + "/hello"), "hi\n");
  ASSERT_TRUE(store_->RemoveSnapshot("bb").ok());
}

TEST_F(ImageStoreTest, RemoveSnapshotRefusesWhileMounted) {
  ASSERT_TRUE(Import("img", TarBuilder().File("f", "x").Finish()).ok());
  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("busy", "img");
  ASSERT_TRUE(snapshot.ok());
  const std::string target = tmp_.path() + "/rootfs";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  const std::string data = absl::StrJoin(snapshot->mounts[0].options, ",");
  // The check reads this process's mount table, so it runs where the mount is.
  int code = RunInPrivateMountNamespace([&] {
    if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) != 0) return 1;
    absl::Status removed = store_->RemoveSnapshot("busy");
    if (!absl::IsFailedPrecondition(removed)) {
      std::fprintf(stderr, "want FAILED_PRECONDITION, got %s\n", removed.ToString().c_str());
      return 2;
    }
    return removed.message().find("unmount it first") != absl::string_view::npos ? 0 : 3;
  });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(linux::PathExists(snapshot->upper_dir));
  EXPECT_TRUE(store_->RemoveSnapshot("busy").ok());
}

TEST_F(ImageStoreTest, OverlayOptionsOverThePageLimitSayWhy) {
  // A root so long that one layer's lowerdir, upperdir and workdir exceed 4096 bytes.
  std::string long_root = tmp_.path();
  while (long_root.size() < 1500) long_root += "/" + std::string(200, 'd');
  absl::StatusOr<std::unique_ptr<ImageStore>> store = ImageStore::Open({.root = long_root});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(
      (*store)->ImportRootfsTar("img", {}, SourceOf(TarBuilder().File("f", "x").Finish())).ok());
  absl::StatusOr<PreparedSnapshot> snapshot = (*store)->PrepareSnapshot("c1", "img");
  EXPECT_EQ(snapshot.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(snapshot.status().message(), HasSubstr("over the kernel's limit of 4096"));
  EXPECT_EQ(CountEntries(long_root + "/snapshots"), 0u);
}

TEST_F(ImageStoreTest, RemoveSnapshotOfMissingKeySucceeds) {
  EXPECT_TRUE(store_->RemoveSnapshot("never-made").ok());
  EXPECT_EQ(store_->RemoveSnapshot("../x").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ImageStoreTest, TwoSnapshotsShareTheLayer) {
  absl::StatusOr<Image> image = Import("img", TarBuilder().File("f", "x").Finish());
  ASSERT_TRUE(image.ok());
  absl::StatusOr<PreparedSnapshot> a = store_->PrepareSnapshot("a", "img");
  absl::StatusOr<PreparedSnapshot> b = store_->PrepareSnapshot("b", image->id.substr(7, 12));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->mounts[0].options[0], b->mounts[0].options[0]);
  EXPECT_NE(a->upper_dir, b->upper_dir);
  EXPECT_EQ(ReadLink(a->mounts[0].options[0].substr(strlen("lowerdir="))),
            "../layers/" + image->layers[0].substr(7));
  EXPECT_EQ(store_->ListSnapshots().size(), 2u);
}

}  // namespace
}  // namespace nodeagent::image
