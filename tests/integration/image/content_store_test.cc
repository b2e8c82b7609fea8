// The content store against the real filesystem and kernel, as root: verified blobs, shared
// layers, OCI whiteouts in overlayfs, archives that skopeo and umoci accept, diff / commit /
// export of a snapshot changed through a real overlay mount, tags and garbage collection,
// and hostile input that must leave the store as it was.

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "services/common/linux/files.h"
#include "services/image/core/busybox_image.h"
#include "services/image/core/digest.h"
#include "services/image/core/image_store.h"
#include "services/image/core/layer_prefetch.h"
#include "services/image/core/layer_unpack.h"
#include "services/image/core/oci_config.h"
#include "services/image/core/oci_manifest.h"
#include "tests/integration/image/test_util.h"
#include "tests/support/subprocess.h"

namespace nodeagent::image {
namespace {

using ::testing::Contains;
using testing::CountEntries;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ReadFileOrDie;
using testing::RunInPrivateMountNamespace;
using testing::ScopedTempDir;
using testing::SourceOf;
using testing::StatOrDie;
using testing::TarBuilder;

// Every file name below a directory (recursively), to compare a store before and after.
std::set<std::string> Tree(const std::string& dir) {
  std::set<std::string> out;
  nodeagent::testing::CommandResult r =
      nodeagent::testing::RunCommand({"find", dir, "-mindepth", "1"});
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    out.insert(std::string(line));
  }
  return out;
}

// Paths in a tar archive held in memory.
std::set<std::string> TarPaths(const std::string& tar) {
  std::set<std::string> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_all(a);
  if (archive_read_open_memory(a, tar.data(), tar.size()) != ARCHIVE_OK) return out;
  archive_entry* entry = nullptr;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK)
    out.insert(archive_entry_pathname(entry));
  archive_read_free(a);
  return out;
}

std::string ConfigFor(const std::vector<std::string>& diff_ids) {
  OciImageConfig config;
  config.created = absl::FromUnixSeconds(1700000000);
  config.architecture = std::string(HostOciArchitecture());
  config.diff_ids = diff_ids;
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    config.history.push_back({config.created, absl::StrCat("layer ", i), "", false});
  }
  config.config.cmd = {"sh"};
  return SerializeOciConfig(config);
}

// An image spec of uncompressed layers held in memory (blob digest = diff id).
struct MemoryImage {
  std::vector<std::string> layers;
  ImageImportSpec Spec(const std::string& name) const {
    ImageImportSpec spec;
    if (!name.empty()) spec.names = {name};
    std::vector<std::string> diff_ids;
    for (const std::string& layer : layers) {
      std::string digest = Sha256Digest(Sha256Hex(layer));
      diff_ids.push_back(digest);
      Descriptor d{std::string(kMediaTypeOciLayer),
                   digest,
                   static_cast<int64_t>(layer.size()),
                   {},
                   std::nullopt};
      const std::string* bytes = &layer;
      spec.layers.push_back(
          {d, [bytes]() -> absl::StatusOr<ByteSource> { return SourceOf(*bytes, 1000); }, "",
           nullptr});
    }
    spec.config_bytes = ConfigFor(diff_ids);
    return spec;
  }
};

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests run as root";
    root_ = tmp_.path() + "/store";
    Open();
  }
  void TearDown() override {
    store_.reset();
    EXPECT_THAT(testing::HostMountInfo(), Not(HasSubstr(tmp_.path())));
  }
  void Open(int64_t max_layer_bytes = int64_t{64} << 30) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<ImageStore>> store =
        ImageStore::Open({.root = root_, .max_layer_bytes = max_layer_bytes});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  Image Busybox() {
    EXPECT_TRUE(EnsureBusyboxImage(*store_, "/bin/busybox").ok());
    absl::StatusOr<Image> image = store_->GetImage("busybox");
    EXPECT_TRUE(image.ok()) << image.status();
    return image.ok() ? *image : Image{};
  }
  // Runs `body` with the snapshot's overlay mounted at <tmp>/mnt-<key>, in a private mount
  // namespace (nothing reaches the host's mount table).
  int WithMounted(const PreparedSnapshot& snapshot, const std::string& key,
                  const std::function<int(const std::string&)>& body) {
    const std::string target = absl::StrCat(tmp_.path(), "/mnt-", key);
    ::mkdir(target.c_str(), 0755);
    const Mount& mount = snapshot.mounts.at(0);
    const std::string data = absl::StrJoin(mount.options, ",");
    return RunInPrivateMountNamespace([&] {
      if (::mount("overlay", target.c_str(), "overlay", 0, data.c_str()) != 0) {
        std::perror("mount overlay");
        return 100;
      }
      return body(target);
    });
  }

  ScopedTempDir tmp_{"content-store-test"};
  std::string root_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ContentStoreTest, BlobsAreVerifiedAndAMismatchKeepsNothing) {
  MemoryImage image{{TarBuilder().File("a", "1").Finish()}};
  ImageImportSpec spec = image.Spec("bad:1");
  const std::set<std::string> before = Tree(root_);

  ImageImportSpec wrong_blob = spec;
  wrong_blob.layers[0].descriptor.digest = Sha256Digest(std::string(64, 'e'));
  absl::StatusOr<Image> r = store_->ImportImage(wrong_blob);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("digest mismatch"));
  EXPECT_EQ(Tree(root_), before);

  ImageImportSpec wrong_diff = spec;
  wrong_diff.config_bytes = ConfigFor({Sha256Digest(std::string(64, 'd'))});
  r = store_->ImportImage(wrong_diff);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the image config says"));
  EXPECT_EQ(Tree(root_), before);

  ImageImportSpec not_json = spec;
  not_json.config_bytes = "{not json";
  r = store_->ImportImage(not_json);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("not valid JSON"));
  EXPECT_EQ(Tree(root_), before);

  // A manifest whose config digest is not the config's.
  ImageImportSpec wrong_manifest = spec;
  OciManifest manifest;
  manifest.config = {
      std::string(kMediaTypeOciConfig), Sha256Digest(std::string(64, 'c')), 5, {}, std::nullopt};
  manifest.layers = {spec.layers[0].descriptor};
  wrong_manifest.manifest_bytes = SerializeManifest(manifest);
  r = store_->ImportImage(wrong_manifest);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the manifest says"));
  EXPECT_EQ(Tree(root_), before);

  // The good one goes in; its blob is the layer tar itself, stored once.
  r = store_->ImportImage(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(
      linux::PathExists(root_ + "/blobs/sha256/" + spec.layers[0].descriptor.digest.substr(7)));
}

TEST_F(ContentStoreTest, SecondLayerFailureRemovesTheFirst) {
  MemoryImage image{
      {TarBuilder().File("one", "1").Finish(), TarBuilder().File("../escape", "x").Finish()}};
  const std::set<std::string> before = Tree(root_);
  absl::StatusOr<Image> r = store_->ImportImage(image.Spec("two:1"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("layer 2/2"));
  EXPECT_THAT(r.status().message(), HasSubstr("escapes the layer"));
  EXPECT_EQ(Tree(root_), before);
}

TEST_F(ContentStoreTest, WhiteoutsBecomeOverlayWhiteouts) {
  MemoryImage image{{TarBuilder()
                         .File("f", "file")
                         .Dir("a")
                         .File("a/x", "x")
                         .File("a/y", "y")
                         .Dir("d")
                         .File("d/k", "k")
                         .Finish(),
                     TarBuilder()
                         .File(".wh.f", "")
                         .Dir("a")
                         .File("a/.wh.x", "")
                         .Dir("d")
                         .File("d/.wh..wh..opq", "")
                         .File("d/new", "n")
                         .Finish()}};
  absl::StatusOr<Image> r = store_->ImportImage(image.Spec("wh:1"));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->layers.size(), 2u);
  const std::string top = store_->LayerDir(r->layers[1]);
  struct stat wf = StatOrDie(top + "/f");
  EXPECT_TRUE(S_ISCHR(wf.st_mode) && wf.st_rdev == 0);
  EXPECT_FALSE(linux::PathExists(top + "/.wh.f"));
  char value[8] = {0};
  EXPECT_EQ(::lgetxattr((top + "/d").c_str(), "trusted.overlay.opaque", value, sizeof(value)), 1);
  EXPECT_EQ(value[0], 'y');
  EXPECT_FALSE(linux::PathExists(top + "/d/.wh..wh..opq"));

  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("wh", "wh:1");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  int code = WithMounted(*snapshot, "wh", [](const std::string& m) {
    if (linux::PathExists(m + "/f")) return 1;
    if (linux::PathExists(m + "/a/x")) return 2;
    if (ReadFileOrDie(m + "/a/y") != "y") return 3;
    if (linux::PathExists(m + "/d/k")) return 4;
    if (ReadFileOrDie(m + "/d/new") != "n") return 5;
    return 0;
  });
  EXPECT_EQ(code, 0);
  // Export sees the same merged view.
  std::string tar;
  ASSERT_TRUE(store_
                  ->ExportSnapshot("wh",
                                   [&](absl::string_view d) {
                                     tar.append(d.data(), d.size());
                                     return absl::OkStatus();
                                   })
                  .ok());
  EXPECT_EQ(TarPaths(tar), (std::set<std::string>{"a/", "a/y", "d/", "d/new"}));
  ASSERT_TRUE(store_->RemoveSnapshot("wh").ok());
}

TEST_F(ContentStoreTest, SaveIsAcceptedBySkopeoAndUmociAndLoadsBack) {
  Image busybox = Busybox();
  const std::string archive = tmp_.path() + "/busybox.tar";
  {
    std::ofstream out(archive, std::ios::binary);
    ASSERT_TRUE(store_
                    ->SaveArchive({"busybox"},
                                  [&](absl::string_view d) {
                                    out.write(d.data(), static_cast<std::streamsize>(d.size()));
                                    return absl::OkStatus();
                                  })
                    .ok());
  }
  absl::StatusOr<StoredManifest> manifest = store_->GetManifest("busybox");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  nodeagent::testing::CommandResult inspect =
      nodeagent::testing::RunCommand({"skopeo", "inspect", "oci-archive:" + archive});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr(manifest->digest));

  const std::string layout = tmp_.path() + "/layout";
  ASSERT_EQ(::mkdir(layout.c_str(), 0755), 0);
  ASSERT_EQ(nodeagent::testing::RunCommand({"tar", "-C", layout, "-xf", archive}).exit_code, 0);
  nodeagent::testing::CommandResult umoci = nodeagent::testing::RunCommand(
      {"umoci", "unpack", "--image", layout + ":latest", tmp_.path() + "/bundle"});
  ASSERT_EQ(umoci.exit_code, 0) << umoci.err;
  EXPECT_TRUE(linux::PathExists(tmp_.path() + "/bundle/rootfs/bin/busybox"));

  // skopeo turns it into a docker-save archive; both kinds load into a fresh store with the
  // same image id.
  const std::string docker = tmp_.path() + "/docker.tar";
  nodeagent::testing::CommandResult copy = nodeagent::testing::RunCommand(
      {"skopeo", "copy", "-q", "oci-archive:" + archive, "docker-archive:" + docker + ":my/bb:v1"});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  root_ = tmp_.path() + "/store2";
  Open();
  for (const std::string& file : {archive, docker}) {
    absl::StatusOr<ByteSource> source = OpenFileSource(file);
    ASSERT_TRUE(source.ok());
    absl::StatusOr<std::vector<Image>> loaded = store_->LoadArchive(*source);
    ASSERT_TRUE(loaded.ok()) << file << ": " << loaded.status();
    ASSERT_EQ(loaded->size(), 1u);
    EXPECT_EQ((*loaded)[0].id, busybox.id);
  }
  // skopeo writes Docker's normalized name.
  absl::StatusOr<Image> named = store_->GetImage("docker.io/my/bb:v1");
  ASSERT_TRUE(named.ok()) << absl::StrJoin(store_->ListImages()[0].names, ",");
  EXPECT_THAT(named->names, ElementsAre("busybox:latest", "docker.io/my/bb:v1"));
  absl::StatusOr<std::vector<Image>> from_dir = store_->LoadDirectory(layout);
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
}

TEST_F(ContentStoreTest, HostileLayoutsLeaveTheStoreAsItWas) {
  Busybox();
  const std::string layout = tmp_.path() + "/evil";
  ASSERT_EQ(::mkdir(layout.c_str(), 0755), 0);
  ASSERT_TRUE(linux::MakeDirs(layout + "/blobs/sha256").ok());
  ASSERT_TRUE(linux::WriteFileAtomic(layout + "/oci-layout", kOciLayoutFile).ok());
  const std::string manifest = "{\"schemaVersion\":2}";
  const std::string wrong = Sha256Hex("something else");
  ASSERT_TRUE(linux::WriteFileAtomic(layout + "/blobs/sha256/" + wrong, manifest).ok());
  auto write_index = [&](const std::string& digest) {
    OciIndex index;
    index.manifests = {{std::string(kMediaTypeOciManifest), digest, 20, {}, std::nullopt}};
    ASSERT_TRUE(linux::WriteFileAtomic(layout + "/index.json", SerializeIndex(index)).ok());
  };
  const std::set<std::string> before = Tree(root_);

  write_index(Sha256Digest(wrong));
  absl::StatusOr<std::vector<Image>> r = store_->LoadDirectory(layout);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("content has digest"));

  // A blob that is a symlink to a host file.
  const std::string hex = Sha256Hex("x");
  ASSERT_EQ(::symlink("/etc/hostname", (layout + "/blobs/sha256/" + hex).c_str()), 0);
  write_index(Sha256Digest(hex));
  r = store_->LoadDirectory(layout);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not a regular file"));

  ASSERT_TRUE(linux::WriteFileAtomic(layout + "/index.json", "[[[[").ok());
  r = store_->LoadDirectory(layout);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Tree(root_), before);

  // A docker-save manifest pointing outside the archive.
  ASSERT_TRUE(linux::RemoveTree(layout + "/index.json").ok());
  ASSERT_TRUE(linux::WriteFileAtomic(layout + "/manifest.json",
                                     R"([{"Config":"../../etc/passwd","Layers":[]}])")
                  .ok());
  r = store_->LoadDirectory(layout);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Tree(root_), before);
}

TEST_F(ContentStoreTest, DeviceNodesNeedPrivilegeAndHugeLayersAreRefused) {
  const std::string dir = tmp_.path() + "/unpack";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::string tar = TarBuilder().CharDevice("dev/mem", 1, 1).Finish();
  UnpackOptions unprivileged;
  unprivileged.allow_device_nodes = false;
  absl::StatusOr<UnpackedLayer> r = UnpackLayer(SourceOf(tar), dir, unprivileged);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("device nodes are not allowed"));
  EXPECT_FALSE(linux::PathExists(dir + "/dev/mem"));

  Open(/*max_layer_bytes=*/1 << 20);
  const std::set<std::string> before = Tree(root_);
  absl::StatusOr<Image> big =
      store_->ImportRootfsTar("big", {},
                              SourceOf(TarBuilder(testing::Compression::kGzip)
                                           .File("zeros", std::string(4 << 20, '\0'))
                                           .Finish()));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Tree(root_), before);
}

TEST_F(ContentStoreTest, DiffCommitHistoryAndExportOfAChangedSnapshot) {
  Image busybox = Busybox();
  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("c1", "busybox");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  // "Install something", change a file, delete a file and a directory, and replace a
  // directory wholesale (overlayfs makes it opaque) -- through the real overlay.
  int code = WithMounted(*snapshot, "c1", [](const std::string& m) {
    if (!linux::MakeDirs(m + "/opt/tool/bin").ok()) return 1;
    if (!linux::WriteFileAtomic(m + "/opt/tool/bin/tool", std::string(300000, 't'), 0755).ok()) {
      return 2;
    }
    if (!linux::WriteFileAtomic(m + "/etc/hosts", "127.0.0.1 changed\n").ok()) return 3;
    if (::unlink((m + "/etc/group").c_str()) != 0) return 4;
    if (!linux::RemoveTree(m + "/root").ok()) return 5;
    if (!linux::RemoveTree(m + "/home").ok() || ::mkdir((m + "/home").c_str(), 0755) != 0) return 6;
    if (!linux::WriteFileAtomic(m + "/home/fresh", "f").ok()) return 7;
    return 0;
  });
  ASSERT_EQ(code, 0);

  absl::StatusOr<std::vector<FileChange>> diff = store_->DiffSnapshot("c1");
  ASSERT_TRUE(diff.ok()) << diff.status();
  std::set<std::string> lines;
  for (const FileChange& c : *diff) lines.insert(absl::StrCat(std::string(1, c.kind), " ", c.path));
  EXPECT_THAT(lines, Contains("A /opt"));
  EXPECT_THAT(lines, Contains("A /opt/tool/bin/tool"));
  EXPECT_THAT(lines, Contains("C /etc"));
  EXPECT_THAT(lines, Contains("C /etc/hosts"));
  EXPECT_THAT(lines, Contains("D /etc/group"));
  EXPECT_THAT(lines, Contains("D /root"));
  EXPECT_THAT(lines, Contains("C /home"));
  EXPECT_THAT(lines, Contains("A /home/fresh"));

  CommitOptions options;
  options.comment = "install tool";
  absl::StatusOr<Image> v1 = store_->CommitSnapshot("c1", "tool:v1", options);
  ASSERT_TRUE(v1.ok()) << v1.status();
  ASSERT_EQ(v1->layers.size(), 2u);
  EXPECT_EQ(v1->layers[0], busybox.layers[0]);
  EXPECT_GT(v1->size_bytes, busybox.size_bytes + 300000);
  absl::StatusOr<std::vector<HistoryItem>> history = store_->History("tool:v1");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].created_by, "nodectl commit");
  EXPECT_EQ((*history)[0].comment, "install tool");
  EXPECT_EQ((*history)[0].layer, v1->layers[1]);
  EXPECT_GT((*history)[0].size_bytes, 300000);
  // The committed layer carries the deletions as overlay whiteouts and /home as opaque.
  const std::string top = store_->LayerDir(v1->layers[1]);
  struct stat wh = StatOrDie(top + "/etc/group");
  EXPECT_TRUE(S_ISCHR(wh.st_mode) && wh.st_rdev == 0);
  char value[4] = {0};
  EXPECT_EQ(::lgetxattr((top + "/home").c_str(), "trusted.overlay.opaque", value, 4), 1);

  // A container of the new image: the tool is there, the deleted paths are not. Then
  // "uninstall" and commit again: the image still grows (the whiteouts add a layer).
  absl::StatusOr<PreparedSnapshot> c2 = store_->PrepareSnapshot("c2", "tool:v1");
  ASSERT_TRUE(c2.ok()) << c2.status();
  code = WithMounted(*c2, "c2", [](const std::string& m) {
    if (!linux::PathExists(m + "/opt/tool/bin/tool")) return 1;
    if (linux::PathExists(m + "/etc/group") || linux::PathExists(m + "/root")) return 2;
    if (!linux::RemoveTree(m + "/opt/tool").ok()) return 3;
    return 0;
  });
  ASSERT_EQ(code, 0);
  diff = store_->DiffSnapshot("c2");
  ASSERT_TRUE(diff.ok());
  lines.clear();
  for (const FileChange& c : *diff) lines.insert(absl::StrCat(std::string(1, c.kind), " ", c.path));
  EXPECT_THAT(lines, Contains("D /opt/tool"));
  absl::StatusOr<Image> v2 = store_->CommitSnapshot("c2", "tool:v2", {});
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->layers.size(), 3u);
  EXPECT_GE(v2->size_bytes, v1->size_bytes);

  // Export: the merged filesystem, without the deleted paths or any whiteout.
  std::string tar;
  ASSERT_TRUE(store_
                  ->ExportSnapshot("c1",
                                   [&](absl::string_view d) {
                                     tar.append(d.data(), d.size());
                                     return absl::OkStatus();
                                   })
                  .ok());
  std::set<std::string> paths = TarPaths(tar);
  EXPECT_THAT(paths, Contains("opt/tool/bin/tool"));
  EXPECT_THAT(paths, Contains("bin/busybox"));
  EXPECT_THAT(paths, Contains("home/fresh"));
  EXPECT_THAT(paths, Not(Contains("etc/group")));
  EXPECT_THAT(paths, Not(Contains("root/")));
  for (const std::string& p : paths) EXPECT_THAT(p, Not(HasSubstr(".wh.")));

  // The committed image saves and loads like any other (its manifest lists 2 layers).
  absl::StatusOr<StoredManifest> m = store_->GetManifest("tool:v1");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->manifest.layers.size(), 2u);
  EXPECT_EQ(m->manifest.layers[1].media_type, kMediaTypeOciLayerGzip);
  ASSERT_TRUE(store_->RemoveSnapshot("c1").ok());
  ASSERT_TRUE(store_->RemoveSnapshot("c2").ok());
}

TEST_F(ContentStoreTest, TwoContainersCostOneCopyOfTheImage) {
  Image busybox = Busybox();
  absl::StatusOr<DiskUsageReport> before = store_->DiskUsage();
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(store_->PrepareSnapshot("a", "busybox").ok());
  ASSERT_TRUE(store_->PrepareSnapshot("b", "busybox").ok());
  absl::StatusOr<DiskUsageReport> after = store_->DiskUsage();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->layer_bytes, before->layer_bytes);
  EXPECT_EQ(after->images_in_use, 1);
  ASSERT_EQ(after->snapshots.size(), 2u);
  for (const auto& s : after->snapshots) EXPECT_LT(s.upper_bytes, 16384) << s.key;
  // du agrees: the whole store is one image's layers plus small change.
  absl::StatusOr<int64_t> du = linux::DiskUsage(root_);
  ASSERT_TRUE(du.ok());
  EXPECT_LT(*du, busybox.size_bytes + after->blob_bytes + 200000);
  EXPECT_EQ(after->layer_bytes_reclaimable, 0);
}

TEST_F(ContentStoreTest, TagsRemovalAndGarbageCollection) {
  Image busybox = Busybox();
  MemoryImage other{{TarBuilder().File("x", "x").Finish()}};
  // Shares no layer; a third image shares busybox's.
  ASSERT_TRUE(store_->ImportImage(other.Spec("other:1")).ok());
  absl::StatusOr<Image> tagged = store_->TagImage("busybox", "mine:2");
  ASSERT_TRUE(tagged.ok());
  EXPECT_THAT(tagged->names, ElementsAre("busybox:latest", "mine:2"));

  ASSERT_TRUE(store_->PrepareSnapshot("user", "busybox").ok());
  // By name among several: only the name goes.
  absl::StatusOr<RemovedImages> r = store_->RemoveImage("mine:2", false);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->untagged, ElementsAre("mine:2"));
  EXPECT_TRUE(r->deleted.empty());
  // The last name of a used image: refused, then forced (names go, the image stays).
  r = store_->RemoveImage("busybox", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("used by 1 container"));
  r = store_->RemoveImage("busybox", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->deleted.empty());
  absl::StatusOr<Image> kept = store_->GetImage(busybox.id);
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(kept->names.empty());

  // Prune keeps what a snapshot uses ...
  absl::StatusOr<PruneReport> prune = store_->Prune(false);
  ASSERT_TRUE(prune.ok());
  EXPECT_THAT(prune->deleted, Not(Contains(busybox.id)));
  EXPECT_TRUE(linux::PathExists(store_->LayerDir(busybox.layers[0])));
  // ... and removes it, its layer and blobs, once nothing does; "other" stays.
  ASSERT_TRUE(store_->RemoveSnapshot("user").ok());
  prune = store_->Prune(false);
  ASSERT_TRUE(prune.ok());
  EXPECT_THAT(prune->deleted, Contains(busybox.id));
  EXPECT_THAT(prune->deleted, Contains(busybox.layers[0]));
  EXPECT_GT(prune->reclaimed_bytes, busybox.size_bytes);
  EXPECT_FALSE(linux::PathExists(store_->LayerDir(busybox.layers[0])));
  EXPECT_FALSE(store_->GetImage(busybox.id).ok());
  absl::StatusOr<Image> still = store_->GetImage("other:1");
  ASSERT_TRUE(still.ok());
  EXPECT_TRUE(linux::PathExists(store_->LayerDir(still->layers[0])));
  absl::StatusOr<StoredManifest> m = store_->GetManifest("other:1");
  ASSERT_TRUE(m.ok()) << m.status();
  // Only referenced blobs remain: manifest, config, one layer.
  EXPECT_EQ(CountEntries(root_ + "/blobs/sha256"), 3u);
  EXPECT_EQ(CountEntries(root_ + "/l"), 1u);

  // rmi by id of the last image removes everything it had.
  r = store_->RemoveImage(still->id, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(CountEntries(root_ + "/blobs/sha256"), 0u);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 0u);
  // The index on disk agrees after a reopen.
  Open();
  EXPECT_TRUE(store_->ListImages().empty());
}

TEST_F(ContentStoreTest, LeftoversOfACrashAreRemovedAtOpen) {
  Busybox();
  ASSERT_TRUE(linux::MakeDirs(root_ + "/tmp/layer-half/usr/bin").ok());
  ASSERT_TRUE(linux::WriteFileAtomic(root_ + "/tmp/blob-123-0", "partial").ok());
  Open();
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_TRUE(store_->GetImage("busybox").ok());
}

// A layer big enough to be unpacked while its archive streams in (over 64 KiB).
std::string BigLayer(const std::string& name, char fill) {
  return TarBuilder()
      .Dir("data")
      .File("data/" + name, std::string(300 << 10, fill))
      .File("data/small-" + name, name)
      .Finish();
}

// An OCI archive (tar of a layout) of one image named `name` with these uncompressed layers;
// `extra` entries are appended after the layout (hostile archives).
std::string OciArchive(const std::string& name, const std::vector<std::string>& layers,
                       const std::function<void(TarBuilder&)>& extra = {}) {
  TarBuilder tar;
  tar.File("oci-layout", std::string(kOciLayoutFile)).Dir("blobs").Dir("blobs/sha256");
  std::vector<std::string> diff_ids;
  OciManifest manifest;
  manifest.media_type = std::string(kMediaTypeOciManifest);
  for (const std::string& layer : layers) {
    const std::string hex = Sha256Hex(layer);
    diff_ids.push_back(Sha256Digest(hex));
    manifest.layers.push_back({std::string(kMediaTypeOciLayer),
                               Sha256Digest(hex),
                               static_cast<int64_t>(layer.size()),
                               {},
                               std::nullopt});
    tar.File("blobs/sha256/" + hex, layer);
  }
  const std::string config = ConfigFor(diff_ids);
  manifest.config = {std::string(kMediaTypeOciConfig),
                     Sha256Digest(Sha256Hex(config)),
                     static_cast<int64_t>(config.size()),
                     {},
                     std::nullopt};
  const std::string manifest_bytes = SerializeManifest(manifest);
  tar.File("blobs/sha256/" + Sha256Hex(config), config);
  tar.File("blobs/sha256/" + Sha256Hex(manifest_bytes), manifest_bytes);
  OciIndex index;
  index.manifests = {{std::string(kMediaTypeOciManifest),
                      Sha256Digest(Sha256Hex(manifest_bytes)),
                      static_cast<int64_t>(manifest_bytes.size()),
                      {{std::string(kAnnotationContainerdName), name}},
                      std::nullopt}};
  tar.File("index.json", SerializeIndex(index));
  if (extra) extra(tar);
  return tar.Finish();
}

// Every blob of the store has the content its name says.
void ExpectBlobsMatchTheirNames(const std::string& root) {
  const std::string dir = root + "/blobs/sha256";
  absl::StatusOr<std::vector<std::string>> names = linux::ListDir(dir);
  ASSERT_TRUE(names.ok()) << names.status();
  for (const std::string& hex : *names) {
    EXPECT_EQ(Sha256Hex(ReadFileOrDie(dir + "/" + hex)), hex) << hex;
  }
}

TEST_F(ContentStoreTest, LoadUnpacksLayersWhileTheArchiveStreamsIn) {
  const std::vector<std::string> layers = {BigLayer("one", 'a'), BigLayer("two", 'b')};
  const std::string archive = OciArchive("streamed:1", layers);
  absl::StatusOr<std::vector<Image>> loaded = store_->LoadArchive(SourceOf(archive, 4096));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 1u);
  ASSERT_EQ((*loaded)[0].layers.size(), 2u);
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string name = i == 0 ? "one" : "two";
    const std::string dir = store_->LayerDir(Sha256Digest(Sha256Hex(layers[i])));
    EXPECT_EQ(ReadFileOrDie(dir + "/data/" + name), std::string(300 << 10, i == 0 ? 'a' : 'b'));
    EXPECT_EQ(ReadFileOrDie(dir + "/data/small-" + name), name);
  }
  ExpectBlobsMatchTheirNames(root_);
  // Nothing unpacked ahead is left behind.
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
}

TEST_F(ContentStoreTest, AnArchiveThatRewritesALayerBlobAfterItsBytesIsNotFooled) {
  Busybox();
  const std::string good = BigLayer("good", 'g');
  const std::string hex = Sha256Hex(good);
  // Small: not followed itself, so only the guards stand between it and the good unpack.
  const std::string evil = TarBuilder().File("evil", "e").Finish();
  const std::set<std::string> before = Tree(root_);
  // The layer blob's path again, with other bytes: what is on disk at the end is not what
  // was unpacked while the first copy streamed in.
  for (const auto& rewrite : std::vector<std::function<void(TarBuilder&)>>{
           [&](TarBuilder& t) { t.File("blobs/sha256/" + hex, evil); },
           // A second name for the blob file, then new bytes written through it.
           [&](TarBuilder& t) { t.Hardlink("other", "blobs/sha256/" + hex).File("other", evil); },
       }) {
    const std::string archive = OciArchive("rewritten:1", {good}, rewrite);
    absl::StatusOr<std::vector<Image>> r = store_->LoadArchive(SourceOf(archive, 4096));
    if (r.ok()) {
      // Only acceptable if what the store kept is the good layer, under its own digest.
      const std::string dir = store_->LayerDir(Sha256Digest(hex));
      EXPECT_EQ(ReadFileOrDie(dir + "/data/good"), std::string(300 << 10, 'g'));
      ExpectBlobsMatchTheirNames(root_);
      ASSERT_TRUE(store_->RemoveImage("rewritten:1", false).ok());
      ASSERT_TRUE(store_->Prune(false).ok());
    } else {
      // The bytes on disk are refused: other size or other digest than the manifest's.
      EXPECT_THAT(std::string(r.status().message()),
                  ::testing::AnyOf(HasSubstr("digest"), HasSubstr("the manifest says")));
    }
    EXPECT_EQ(Tree(root_), before);
  }
}

TEST_F(ContentStoreTest, PrefetchedLayerIsGivenOutOnlyForTheFileThatWasUnpacked) {
  const std::string layer = BigLayer("x", 'x');
  const std::string files = tmp_.path() + "/files";
  ASSERT_TRUE(linux::MakeDirs(files).ok());
  ASSERT_TRUE(linux::MakeDirs(root_ + "/tmp").ok());
  // Plays the archive extraction: the file is written in pieces, the hooks told about each.
  auto stream = [&](LayerPrefetcher& prefetch, const std::string& name, const std::string& bytes) {
    const std::string path = files + "/" + name;
    ::unlink(path.c_str());
    std::ofstream out(path, std::ios::binary);
    prefetch.OnEntryStart({name, path, S_IFREG, false, static_cast<int64_t>(bytes.size())});
    for (size_t done = 0; done < bytes.size(); done += 10000) {
      out.write(bytes.data() + done, std::min<size_t>(10000, bytes.size() - done));
      out.flush();
      prefetch.OnEntryData(static_cast<int64_t>(std::min<size_t>(done + 10000, bytes.size())));
    }
    prefetch.OnEntryEnd();
  };
  {
    LayerPrefetcher prefetch(root_ + "/tmp", {}, 2);
    stream(prefetch, "a", layer);
    stream(prefetch, "b", "not a layer at all, but long enough" + std::string(100 << 10, '.'));
    prefetch.Finish(true);
    std::shared_ptr<PreparedLayer> a = prefetch.Take("a");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->unpacked().diff_id_hex, Sha256Hex(layer));
    EXPECT_EQ(a->unpacked().blob_digest_hex, Sha256Hex(layer));
    EXPECT_EQ(ReadFileOrDie(a->dir() + "/data/small-x"), "x");
    EXPECT_EQ(prefetch.Take("b"), nullptr);
    EXPECT_EQ(prefetch.Take("missing"), nullptr);
    EXPECT_TRUE(a->Claim());
    EXPECT_FALSE(a->Claim());
    ASSERT_TRUE(linux::RemoveTree(a->dir()).ok());
  }
  {
    // The file replaced by another inode after its bytes were unpacked.
    LayerPrefetcher prefetch(root_ + "/tmp", {}, 1);
    stream(prefetch, "a", layer);
    prefetch.Finish(true);
    ASSERT_EQ(::rename((files + "/a").c_str(), (files + "/a.old").c_str()), 0);
    ASSERT_TRUE(linux::WriteFileAtomic(files + "/a", layer).ok());
    EXPECT_EQ(prefetch.Take("a"), nullptr);
  }
  {
    // A second name: someone could write through it.
    LayerPrefetcher prefetch(root_ + "/tmp", {}, 1);
    stream(prefetch, "a", layer);
    prefetch.Finish(true);
    ASSERT_EQ(::link((files + "/a").c_str(), (files + "/a2").c_str()), 0);
    EXPECT_EQ(prefetch.Take("a"), nullptr);
  }
  {
    // The same path again in the archive, or any hardlink entry, voids it.
    LayerPrefetcher prefetch(root_ + "/tmp", {}, 1);
    stream(prefetch, "a", layer);
    prefetch.OnEntryStart({"a", files + "/a", S_IFREG, false, 0});
    prefetch.OnEntryEnd();
    prefetch.Finish(true);
    EXPECT_EQ(prefetch.Take("a"), nullptr);
  }
  {
    LayerPrefetcher prefetch(root_ + "/tmp", {}, 1);
    stream(prefetch, "c", layer);
    prefetch.OnEntryStart({"d", files + "/d", S_IFREG, true, 0});
    prefetch.OnEntryEnd();
    prefetch.Finish(true);
    EXPECT_EQ(prefetch.Take("c"), nullptr);
  }
  {
    // An archive that failed gives nothing out, and a prefetcher stopped halfway (the
    // extraction failed mid-entry) returns.
    LayerPrefetcher prefetch(root_ + "/tmp", {}, 1);
    prefetch.OnEntryStart({"e", files + "/a", S_IFREG, false, int64_t{1} << 30});
    prefetch.OnEntryData(1000);
    prefetch.Finish(false);
    EXPECT_EQ(prefetch.Take("e"), nullptr);
  }
  // Whatever was not taken is gone.
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
}

// --- Layers kept as blobs (pull/load --skip-unpack), unpacked on first use ------------------

// An image of a plain layer and a gzip one, to be imported without unpacking. `gzip_tar`
// is the gzip layer's tar; `gzip_diff_id` overrides its diff id in the config.
struct BlobOnlyImage {
  std::string plain = TarBuilder().Dir("etc").File("etc/plain", "plain\n").Finish();
  std::string gzip;
  std::string gzip_diff_id;
  size_t chunk = 1000;  // Bytes the sources hand out at a time.

  explicit BlobOnlyImage(std::string gzip_tar_compressed, std::string diff_id = "")
      : gzip(std::move(gzip_tar_compressed)),
        gzip_diff_id(diff_id.empty() ? Sha256Digest(Sha256Hex(testing::Inflate(gzip))) : diff_id) {}

  ImageImportSpec Spec(const std::string& name) const {
    ImageImportSpec spec;
    spec.names = {name};
    spec.unpack = false;
    const std::string plain_digest = Sha256Digest(Sha256Hex(plain));
    const std::string* plain_bytes = &plain;
    const std::string* gzip_bytes = &gzip;
    const size_t chunk_size = chunk;
    spec.layers.push_back({{std::string(kMediaTypeOciLayer),
                            plain_digest,
                            static_cast<int64_t>(plain.size()),
                            {},
                            std::nullopt},
                           [plain_bytes, chunk_size]() -> absl::StatusOr<ByteSource> {
                             return SourceOf(*plain_bytes, chunk_size);
                           },
                           "",
                           nullptr});
    spec.layers.push_back({{std::string(kMediaTypeOciLayerGzip),
                            Sha256Digest(Sha256Hex(gzip)),
                            static_cast<int64_t>(gzip.size()),
                            {},
                            std::nullopt},
                           [gzip_bytes, chunk_size]() -> absl::StatusOr<ByteSource> {
                             return SourceOf(*gzip_bytes, chunk_size);
                           },
                           "",
                           nullptr});
    spec.config_bytes = ConfigFor({plain_digest, gzip_diff_id});
    return spec;
  }
};

TEST_F(ContentStoreTest, SkipUnpackKeepsBlobsAndTheFirstSnapshotUnpacks) {
  BlobOnlyImage image(
      TarBuilder(testing::Compression::kGzip).Dir("usr").File("usr/gz", "gzip\n").Finish());
  absl::StatusOr<Image> imported = store_->ImportImage(image.Spec("lazy:1"));
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_FALSE(imported->unpacked);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 0u);
  // Until unpacked, an image's size is its blobs', and so are its layers' in the history.
  EXPECT_EQ(imported->size_bytes, static_cast<int64_t>(image.plain.size() + image.gzip.size()));
  absl::StatusOr<std::vector<HistoryItem>> history = store_->History("lazy:1");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].size_bytes, static_cast<int64_t>(image.gzip.size()));
  for (const std::string& blob : {image.plain, image.gzip}) {
    EXPECT_EQ(ReadFileOrDie(root_ + "/blobs/sha256/" + Sha256Hex(blob)), blob);
  }

  // The index keeps such an image across a restart.
  Open();
  absl::StatusOr<Image> reopened = store_->GetImage("lazy:1");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE(reopened->unpacked);

  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("c1", "lazy:1");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_TRUE(snapshot->image.unpacked);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 2u);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  EXPECT_EQ(WithMounted(*snapshot, "c1",
                        [](const std::string& root) {
                          return ReadFileOrDie(root + "/etc/plain") == "plain\n" &&
                                         ReadFileOrDie(root + "/usr/gz") == "gzip\n"
                                     ? 0
                                     : 1;
                        }),
            0);
  absl::StatusOr<Image> after = store_->GetImage("lazy:1");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->unpacked);
  // Unpacked now, its size is its layers' on disk.
  EXPECT_NE(after->size_bytes, imported->size_bytes);
  // And again after a restart; unpacking an unpacked image does nothing.
  Open();
  absl::StatusOr<Image> again = store_->UnpackImage("lazy:1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->unpacked);
  EXPECT_TRUE(store_->RemoveSnapshot("c1").ok());
}

TEST_F(ContentStoreTest, SkipUnpackOfAHostileLayerFailsAtFirstUseAndKeepsNothingOfIt) {
  BlobOnlyImage image(
      TarBuilder(testing::Compression::kGzip).File("ok", "1").File("../escape", "x").Finish());
  ASSERT_TRUE(store_->ImportImage(image.Spec("hostile:1")).ok());
  const std::set<std::string> before = Tree(root_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("c1", "hostile:1");
    ASSERT_FALSE(snapshot.ok());
    EXPECT_EQ(snapshot.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(
        snapshot.status().message(),
        HasSubstr(absl::StrCat("layer sha256:", Sha256Hex(image.gzip), " does not unpack")));
    EXPECT_THAT(snapshot.status().message(), HasSubstr("escapes the layer"));
    EXPECT_TRUE(store_->ListSnapshots().empty());
    EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
    EXPECT_EQ(CountEntries(root_ + "/snapshots"), 0u);
  }
  // The good layer was unpacked and kept (whole and checked); nothing else changed.
  std::set<std::string> after = Tree(root_);
  std::erase_if(after, [&](const std::string& path) {
    return absl::StartsWith(path, root_ + "/layers/") || absl::StartsWith(path, root_ + "/l/");
  });
  EXPECT_EQ(after, before);
  absl::StatusOr<Image> unpacked = store_->UnpackImage("hostile:1");
  EXPECT_EQ(unpacked.status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<Image> still = store_->GetImage("hostile:1");
  ASSERT_TRUE(still.ok());
  EXPECT_FALSE(still->unpacked);

  // Removing it removes its blobs and the layer that did unpack.
  ASSERT_TRUE(store_->RemoveImage("hostile:1", false).ok());
  EXPECT_EQ(CountEntries(root_ + "/layers"), 0u);
  EXPECT_FALSE(linux::PathExists(root_ + "/blobs/sha256/" + Sha256Hex(image.gzip)));
}

TEST_F(ContentStoreTest, SkipUnpackChecksDiffIdsAtOnceForPlainLayersAndLaterForCompressed) {
  const std::set<std::string> before = Tree(root_);
  BlobOnlyImage good(TarBuilder(testing::Compression::kGzip).File("a", "1").Finish());
  ImageImportSpec wrong_plain = good.Spec("wrong:1");
  wrong_plain.config_bytes = ConfigFor({Sha256Digest(std::string(64, 'd')), good.gzip_diff_id});
  absl::StatusOr<Image> r = store_->ImportImage(wrong_plain);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the image config says"));
  EXPECT_EQ(Tree(root_), before);

  // A compressed blob given as its own diff id would be trusted by the unpack: refused.
  BlobOnlyImage self_diff_id(TarBuilder(testing::Compression::kGzip).File("s", "1").Finish());
  self_diff_id.gzip_diff_id = Sha256Digest(Sha256Hex(self_diff_id.gzip));
  r = store_->ImportImage(self_diff_id.Spec("wrong:3"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("is compressed, yet the image config gives it"));
  EXPECT_EQ(Tree(root_), before);

  BlobOnlyImage wrong_gzip(TarBuilder(testing::Compression::kGzip).File("a", "1").Finish(),
                           Sha256Digest(std::string(64, 'e')));
  ASSERT_TRUE(store_->ImportImage(wrong_gzip.Spec("wrong:2")).ok());
  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("c1", "wrong:2");
  ASSERT_FALSE(snapshot.ok());
  EXPECT_EQ(snapshot.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(snapshot.status().message(), HasSubstr("the image config says"));
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
}

TEST_F(ContentStoreTest, AnImportThatUnpacksUsesABlobStoredWithoutUnpacking) {
  BlobOnlyImage image(TarBuilder(testing::Compression::kGzip).File("b", "2").Finish());
  ASSERT_TRUE(store_->ImportImage(image.Spec("lazy:1")).ok());
  // The same image imported again with unpacking: its blobs are not read from the source.
  ImageImportSpec spec = image.Spec("eager:1");
  spec.unpack = true;
  for (LayerSourceSpec& layer : spec.layers) {
    layer.open = []() -> absl::StatusOr<ByteSource> {
      return absl::InternalError("the source must not be read");
    };
  }
  absl::StatusOr<Image> eager = store_->ImportImage(spec);
  ASSERT_TRUE(eager.ok()) << eager.status();
  EXPECT_TRUE(eager->unpacked);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 2u);
}

TEST_F(ContentStoreTest, ConcurrentFirstSnapshotsAllGetTheLayers) {
  BlobOnlyImage image(TarBuilder(testing::Compression::kGzip).File("c", "3").Finish());
  ASSERT_TRUE(store_->ImportImage(image.Spec("lazy:1")).ok());
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back(
        [&, i] { results[i] = store_->PrepareSnapshot(absl::StrCat("c", i), "lazy:1").status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(CountEntries(root_ + "/layers"), 2u);
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(store_->RemoveSnapshot(absl::StrCat("c", i)).ok());
  }
}

TEST_F(ContentStoreTest, AnUnpackKilledHalfwayLeavesScratchThatOpenRemoves) {
  // A gzip layer of many files, so that its unpack lasts long enough to be killed midway.
  TarBuilder many(testing::Compression::kGzip);
  many.Dir("many");
  for (int i = 0; i < 5000; ++i) many.File(absl::StrCat("many/f", i), "x");
  BlobOnlyImage image(many.Finish());
  ASSERT_TRUE(store_->ImportImage(image.Spec("big:1")).ok());
  store_.reset();  // The child takes the store's lock.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<ImageStore>> store = ImageStore::Open({.root = root_});
    if (store.ok()) (void)(*store)->UnpackImage("big:1");
    ::_exit(0);
  }
  // SIGKILLed once its scratch directory holds part of the layer.
  bool caught = false;
  for (int i = 0; i < 50000 && !caught; ++i) {
    absl::StatusOr<std::vector<std::string>> scratch = linux::ListDir(root_ + "/tmp");
    for (const std::string& name : scratch.ok() ? *scratch : std::vector<std::string>{}) {
      caught = caught || (absl::StartsWith(name, "layer-") &&
                          CountEntries(root_ + "/tmp/" + name + "/many") > 20);
    }
    if (!caught) ::usleep(100);
  }
  ::kill(child, SIGKILL);
  int wstatus = 0;
  ::waitpid(child, &wstatus, 0);
  ASSERT_TRUE(caught) << "the unpack ended before it could be killed";

  Open();
  EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  ASSERT_TRUE(store_->GetImage("big:1").ok());
  absl::StatusOr<Image> unpacked = store_->UnpackImage("big:1");
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  EXPECT_TRUE(unpacked->unpacked);
  EXPECT_EQ(CountEntries(store_->LayerDir(image.gzip_diff_id) + "/many"), 5000u);
}

TEST_F(ContentStoreTest, SkipUnpackKnowsTheFormatFromHeadersHandedOverInPieces) {
  // 100-byte chunks: neither the tar magic (offset 257) nor a whole header in the first.
  BlobOnlyImage image(TarBuilder(testing::Compression::kGzip).File("p", "1").Finish());
  image.chunk = 100;
  absl::StatusOr<Image> imported = store_->ImportImage(image.Spec("pieces:1"));
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_FALSE(imported->unpacked);
  EXPECT_EQ(CountEntries(root_ + "/layers"), 0u);
  EXPECT_EQ(ReadFileOrDie(root_ + "/blobs/sha256/" + Sha256Hex(image.plain)), image.plain);
  EXPECT_TRUE(store_->PrepareSnapshot("c1", "pieces:1").ok());
  EXPECT_TRUE(store_->RemoveSnapshot("c1").ok());
}

TEST_F(ContentStoreTest, AStoredCompressedBlobIsNeverTakenForItsOwnDiffId) {
  // Image A stores gzip blob G (its real diff id is X). Image B reuses G and gives G itself
  // as the diff id: its layer would hold X's tar under the name G.
  BlobOnlyImage a(TarBuilder(testing::Compression::kGzip).File("x", "1").Finish());
  ASSERT_TRUE(store_->ImportImage(a.Spec("a:1")).ok());
  BlobOnlyImage b(a.gzip, Sha256Digest(Sha256Hex(a.gzip)));
  for (bool unpack : {false, true}) {
    SCOPED_TRACE(unpack ? "unpacking import" : "skip-unpack import");
    ImageImportSpec spec = b.Spec(unpack ? "b:eager" : "b:lazy");
    spec.unpack = unpack;
    absl::StatusOr<Image> imported = store_->ImportImage(spec);
    absl::Status status = imported.status();
    if (imported.ok()) {
      // Accepted as blobs only (the blob is stored already): refused at first use.
      ASSERT_FALSE(unpack);
      status = store_->PrepareSnapshot("b", "b:lazy").status();
      EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    }
    EXPECT_THAT(status.message(), HasSubstr("is compressed, yet the image config gives it"));
    EXPECT_FALSE(linux::PathExists(store_->LayerDir(b.gzip_diff_id)));
    EXPECT_EQ(CountEntries(root_ + "/tmp"), 0u);
  }
  EXPECT_TRUE(store_->ListSnapshots().empty());
}

TEST_F(ContentStoreTest, AFailedImportLeavesALayerAnotherImportIsStillWriting) {
  const std::string shared = TarBuilder().File("shared", "1").Finish();
  const std::string shared_dir = store_->LayerDir(Sha256Digest(Sha256Hex(shared)));
  // Import Y stores the shared layer, then waits in its second layer until X has failed.
  MemoryImage y_image{{shared, TarBuilder().File("slow", "2").Finish()}};
  ImageImportSpec y = y_image.Spec("y:1");
  absl::Notification x_failed;
  auto open_second = y.layers[1].open;
  y.layers[1].open = [&x_failed, open_second]() -> absl::StatusOr<ByteSource> {
    x_failed.WaitForNotification();
    return open_second();
  };
  absl::StatusOr<Image> y_result = absl::UnknownError("not run");
  std::thread y_import([&] { y_result = store_->ImportImage(y); });
  for (int i = 0; i < 10000 && !linux::PathExists(shared_dir); ++i) ::usleep(1000);
  ASSERT_TRUE(linux::PathExists(shared_dir));

  // Import X shares the layer and fails on its second: its cleanup must leave Y's layer.
  MemoryImage x_image{{shared, TarBuilder().File("../escape", "x").Finish()}};
  absl::StatusOr<Image> x_result = store_->ImportImage(x_image.Spec("x:1"));
  x_failed.Notify();
  y_import.join();
  EXPECT_FALSE(x_result.ok());
  ASSERT_TRUE(y_result.ok()) << y_result.status();
  EXPECT_TRUE(linux::PathExists(shared_dir));
  absl::StatusOr<PreparedSnapshot> snapshot = store_->PrepareSnapshot("c1", "y:1");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(WithMounted(*snapshot, "c1",
                        [](const std::string& root) {
                          return ReadFileOrDie(root + "/shared") == "1" ? 0 : 1;
                        }),
            0);
  EXPECT_TRUE(store_->RemoveSnapshot("c1").ok());
}

}  // namespace
}  // namespace nodeagent::image
