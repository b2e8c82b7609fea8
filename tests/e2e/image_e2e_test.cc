// End-to-end: images move between a node, Debian's docker-registry (HTTP and HTTPS, on
// loopback), skopeo and umoci, and containers' changes become images -- all through nodectl.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

extern char** environ;

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A port that was free a moment ago (the registry takes a fixed address from its config).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// Debian's docker-registry on 127.0.0.1 with its storage and config in `dir`.
class Registry {
 public:
  Registry(const std::string& dir, bool tls) : dir_(dir), port_(FreePort()) {
    std::string config = absl::StrCat(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ", dir,
        "/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:", port_, "\n");
    if (tls) {
      RunCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                  dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "1", "-subj",
                  "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"});
      absl::StrAppend(&config, "  tls:\n    certificate: ", dir, "/cert.pem\n    key: ", dir,
                      "/key.pem\n");
    }
    std::ofstream(dir + "/config.yml") << config;
    std::string log = dir + "/registry.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::string cfg = dir + "/config.yml";
    const char* argv[] = {"docker-registry", "serve", cfg.c_str(), nullptr};
    posix_spawnp(&pid_, "docker-registry", &actions, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    // Ready when /v2/ answers.
    const std::string url = absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", port_, "/v2/");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      CommandResult r = RunCommand({"curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url});
      if (r.out == "200") {
        ready_ = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~Registry() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool ready() const { return ready_; }
  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string cert() const { return dir_ + "/cert.pem"; }
  std::string data() const { return dir_ + "/data"; }

 private:
  std::string dir_;
  int port_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

// "Digest": "sha256:..." from skopeo inspect.
std::string SkopeoDigest(const std::string& json) {
  std::smatch m;
  std::regex re("\"Digest\": \"(sha256:[0-9a-f]{64})\"");
  return std::regex_search(json, m, re) ? m[1].str() : "";
}

class ImageE2E : public NodeFixture {
 protected:
  static void SetUpTestSuite() {
    NodeFixture::SetUpTestSuite();
    http_dir_ = MakeTempDir(base_, "registry-http");
    https_dir_ = MakeTempDir(base_, "registry-https");
    http_ = new Registry(http_dir_, false);
    https_ = new Registry(https_dir_, true);
  }
  static void TearDownTestSuite() {
    delete http_;
    delete https_;
    http_ = https_ = nullptr;
    NodeFixture::TearDownTestSuite();
  }
  void SetUp() override {
    ASSERT_TRUE(http_->ready()) << ReadText(http_dir_ + "/registry.log");
    ASSERT_TRUE(https_->ready()) << ReadText(https_dir_ + "/registry.log");
  }

  // Saves busybox as an OCI archive and returns its path.
  std::string SaveBusybox() {
    std::string path = base_ + "/busybox-oci.tar";
    if (!Exists(path)) {
      CommandResult save = Nodectl({"save", "-o", path, "busybox"});
      EXPECT_EQ(save.exit_code, 0) << save.err;
    }
    return path;
  }

  static inline std::string http_dir_;
  static inline std::string https_dir_;
  static inline Registry* http_ = nullptr;
  static inline Registry* https_ = nullptr;
};

TEST_F(ImageE2E, SkopeoPushesNodectlPullsSameDigest) {
  std::string archive = SaveBusybox();
  std::string ref = http_->host() + "/e2e/from-skopeo:v1";
  CommandResult copy = RunCommand({"skopeo", "copy", "-q", "--dest-tls-verify=false",
                                   "--dest-compress", "oci-archive:" + archive, "docker://" + ref});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  CommandResult inspect =
      RunCommand({"skopeo", "inspect", "--tls-verify=false", "docker://" + ref});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  std::string registry_digest = SkopeoDigest(inspect.out);
  ASSERT_FALSE(registry_digest.empty()) << inspect.out;

  CommandResult pull = Nodectl({"pull", "--plain-http", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_THAT(pull.err, HasSubstr("Digest: " + registry_digest));
  EXPECT_THAT(pull.err, HasSubstr("Pull complete"));  // Progress, one line per layer.
  CommandResult images = Nodectl({"images"});
  EXPECT_THAT(images.out, HasSubstr(ref));
  // Same config, so the same image id as the busybox it came from.
  CommandResult inspect_local = Nodectl({"--format", "json", "images"});
  EXPECT_THAT(Trim(pull.out), ::testing::StartsWith("sha256:"));
  // It runs.
  CommandResult run = Nodectl({"run", "--rm", ref, "echo", "pulled-ok"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "pulled-ok\n");
  // Pulling again downloads nothing.
  CommandResult again = Nodectl({"pull", "--plain-http", ref});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("Already exists"));
}

TEST_F(ImageE2E, NodectlPushesSkopeoAndUmociReadIt) {
  std::string ref = http_->host() + "/e2e/from-nodectl:v2";
  CommandResult push = Nodectl({"push", "--plain-http", "--chunk-size", "300000", "busybox", ref});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  std::string digest = Trim(push.out);
  EXPECT_THAT(push.err, HasSubstr("Pushed"));
  CommandResult inspect =
      RunCommand({"skopeo", "inspect", "--tls-verify=false", "docker://" + ref});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(SkopeoDigest(inspect.out), digest);
  // skopeo copies it into an OCI layout that umoci unpacks into a runnable rootfs.
  std::string layout = base_ + "/pushed-layout";
  CommandResult copy = RunCommand({"skopeo", "copy", "-q", "--src-tls-verify=false",
                                   "docker://" + ref, "oci:" + layout + ":v2"});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  CommandResult unpack =
      RunCommand({"umoci", "unpack", "--image", layout + ":v2", base_ + "/pushed-bundle"});
  ASSERT_EQ(unpack.exit_code, 0) << unpack.err;
  EXPECT_TRUE(Exists(base_ + "/pushed-bundle/rootfs/bin/busybox"));
  // And that layout loads back into the node as a directory.
  CommandResult load = Nodectl({"load", "-i", layout});
  EXPECT_EQ(load.exit_code, 0) << load.err;
}

TEST_F(ImageE2E, HttpsNeedsTheRightCertificate) {
  std::string ref = https_->host() + "/e2e/tls:v1";
  CommandResult push = Nodectl({"push", "--ca-file", https_->cert(), "busybox", ref});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  CommandResult untrusted = Nodectl({"pull", ref});
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_THAT(untrusted.err, HasSubstr("certificate"));
  CommandResult pull = Nodectl({"pull", "--ca-file", https_->cert(), ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  CommandResult insecure = Nodectl({"pull", "-q", "--tls-verify=false", ref});
  EXPECT_EQ(insecure.exit_code, 0) << insecure.err;
}

TEST_F(ImageE2E, ImageIndexPicksLinuxAmd64) {
  // An OCI layout with an index of two platforms: the real busybox for this host, and a
  // made-up arm64 entry whose config says so.
  std::string archive = SaveBusybox();
  std::string layout = base_ + "/multi";
  ASSERT_EQ(RunCommand({"mkdir", "-p", layout}).exit_code, 0);
  ASSERT_EQ(RunCommand({"tar", "-C", layout, "-xf", archive}).exit_code, 0);
  // Build the arm64 config and manifest with sed on the saved ones (one layer shared).
  std::string index = ReadText(layout + "/index.json");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(index, m, std::regex("\"digest\":\"sha256:([0-9a-f]{64})\"")));
  std::string manifest_hex = m[1].str();
  std::string manifest = ReadText(layout + "/blobs/sha256/" + manifest_hex);
  ASSERT_TRUE(std::regex_search(
      manifest, m, std::regex("config\":\\{[^}]*\"digest\":\"sha256:([0-9a-f]{64})\"")));
  std::string config_hex = m[1].str();
  std::string config = ReadText(layout + "/blobs/sha256/" + config_hex);
  std::string arm_config = std::regex_replace(config, std::regex("\"amd64\""), "\"arm64\"");
  auto put = [&](const std::string& bytes) {
    std::string tmp = layout + "/tmp-blob";
    std::ofstream(tmp, std::ios::binary) << bytes;
    std::string hex = Trim(RunCommand({"sh", "-c", "sha256sum " + tmp + " | cut -d' ' -f1"}).out);
    RunCommand({"mv", tmp, layout + "/blobs/sha256/" + hex});
    return hex;
  };
  std::string arm_config_hex = put(arm_config);
  std::string arm_manifest = manifest;
  arm_manifest.replace(arm_manifest.find(config_hex), 64, arm_config_hex);
  arm_manifest = std::regex_replace(arm_manifest, std::regex("\"size\":\\d+\\},\"layers"),
                                    absl::StrCat("\"size\":", arm_config.size(), "},\"layers"));
  std::string arm_manifest_hex = put(arm_manifest);
  std::string new_index = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:)",
      arm_manifest_hex, R"(","size":)", arm_manifest.size(),
      R"(,"platform":{"os":"linux","architecture":"arm64"}},)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:)",
      manifest_hex, R"(","size":)", manifest.size(),
      R"(,"platform":{"os":"linux","architecture":"amd64"}}]})");
  std::string list_hex = put(new_index);
  std::ofstream(layout + "/index.json") << absl::StrCat(
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:)",
      list_hex, R"(","size":)", new_index.size(),
      R"(,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]})");
  std::string ref = http_->host() + "/e2e/multi:v1";
  CommandResult copy = RunCommand({"skopeo", "copy", "-q", "--all", "--dest-tls-verify=false",
                                   "oci:" + layout + ":multi", "docker://" + ref});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  CommandResult pull = Nodectl({"pull", "--plain-http", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(Trim(pull.out), "sha256:" + config_hex);
  // The digest pulled is the registry index's amd64 entry (skopeo may have recompressed).
  CommandResult raw =
      RunCommand({"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + ref});
  ASSERT_TRUE(std::regex_search(
      raw.out, m,
      std::regex("\"digest\":\"(sha256:[0-9a-f]{64})\"[^{]*\"platform\":\\{[^}]*amd64")))
      << raw.out;
  EXPECT_THAT(pull.err, HasSubstr("Digest: " + m[1].str()));
}

TEST_F(ImageE2E, ABrokenPullKeepsNoCorruptBlob) {
  // A layer blob the registry serves with overwritten bytes (same length), of an image
  // the node does not have (pushed from a unique import, then removed).
  std::string ref = http_->host() + "/e2e/corrupt:v1";
  std::string src = base_ + "/random-root";
  ASSERT_EQ(RunCommand({"sh", "-c",
                        "mkdir -p " + src + " && head -c 200000 /dev/urandom > " + src +
                            "/random && tar -C " + src + " -czf " + src + ".tar.gz ."})
                .exit_code,
            0);
  ASSERT_EQ(Nodectl({"import", src + ".tar.gz", "corrupt-src:v1"}).exit_code, 0);
  CommandResult push = Nodectl({"push", "-q", "--plain-http", "corrupt-src:v1", ref});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  ASSERT_EQ(Nodectl({"rmi", "corrupt-src:v1"}).exit_code, 0);
  CommandResult raw =
      RunCommand({"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + ref});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      raw.out, m, std::regex("layers\":\\[\\{[^}]*\"digest\":\"sha256:([0-9a-f]{64})\"")))
      << raw.out;
  std::string layer_hex = m[1].str();
  std::string data = absl::StrCat(http_->data(), "/docker/registry/v2/blobs/sha256/",
                                  layer_hex.substr(0, 2), "/", layer_hex, "/data");
  ASSERT_TRUE(Exists(data));
  ASSERT_EQ(
      RunCommand({"sh", "-c",
                  "printf 'XXXXXXXX' | dd of=" + data + " bs=1 seek=5000 conv=notrunc 2>/dev/null"})
          .exit_code,
      0);
  CommandResult pull = Nodectl({"pull", "--plain-http", ref});
  EXPECT_EQ(pull.exit_code, 1);
  EXPECT_THAT(pull.err,
              ::testing::AnyOf(HasSubstr("digest"), HasSubstr("gzip"), HasSubstr("input")));
  EXPECT_FALSE(Exists(ImageRoot() + "/blobs/sha256/" + layer_hex));
  EXPECT_EQ(RunCommand({"ls", "-A", ImageRoot() + "/tmp"}).out, "");
  EXPECT_THAT(Nodectl({"images"}).out, Not(HasSubstr("corrupt")));
}

TEST_F(ImageE2E, ContainerChangesDiffCommitHistoryExport) {
  // The exercise: install something, commit; remove it, commit; the image only grows.
  CommandResult started = Nodectl(
      {"run", "-d", "--name", "installer", "busybox", "sh", "-c",
       "mkdir -p /opt/app && dd if=/dev/zero of=/opt/app/blob bs=1k count=512 2>/dev/null && "
       "echo hi > /opt/app/hello && rm /etc/group && touch /ready && sleep 600"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  CommandResult diff;
  while (std::chrono::steady_clock::now() < deadline) {
    diff = Nodectl({"diff", "installer"});
    if (absl::StrContains(diff.out, "A /ready")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT(diff.out, HasSubstr("A /opt/app/hello"));
  EXPECT_THAT(diff.out, HasSubstr("D /etc/group"));
  EXPECT_THAT(diff.out, HasSubstr("C /etc"));

  // rmi is refused while the container uses the image (by id: by name, an image with
  // several names -- the pulled copies share busybox's id -- only loses that name).
  CommandResult json_images = Nodectl({"--format", "json", "images"});
  size_t name_at = json_images.out.find("\"busybox:latest\"");
  ASSERT_NE(name_at, std::string::npos) << json_images.out;
  size_t id_at = json_images.out.find("\"id\": \"", name_at);
  ASSERT_NE(id_at, std::string::npos);
  std::string busybox_id = json_images.out.substr(id_at + 7, 71);
  CommandResult rmi = Nodectl({"rmi", busybox_id});
  EXPECT_EQ(rmi.exit_code, 1);
  EXPECT_THAT(rmi.err, HasSubstr("used by"));

  CommandResult commit = Nodectl({"commit", "-m", "install app", "installer", "app:v1"});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  CommandResult history = Nodectl({"history", "app:v1"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  EXPECT_THAT(history.out, HasSubstr("nodectl commit"));
  EXPECT_THAT(history.out, HasSubstr("install app"));
  EXPECT_EQ(std::count(history.out.begin(), history.out.end(), '\n'), 3) << history.out;

  std::string tar = base_ + "/installer.tar";
  CommandResult exported = Nodectl({"export", "installer", "-o", tar});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  CommandResult listing = RunCommand({"tar", "-tf", tar});
  EXPECT_THAT(listing.out, HasSubstr("opt/app/hello"));
  EXPECT_THAT(listing.out, HasSubstr("bin/busybox"));
  EXPECT_THAT(listing.out, Not(HasSubstr("etc/group")));
  EXPECT_THAT(listing.out, Not(HasSubstr(".wh.")));
  ASSERT_EQ(Nodectl({"rm", "-f", "installer"}).exit_code, 0);

  // A container of the committed image has the change; removing it and committing again
  // adds a layer of whiteouts, so the image grows rather than shrinks.
  CommandResult run = Nodectl({"run", "--rm", "app:v1", "sh", "-c",
                               "cat /opt/app/hello; test -e /etc/group || echo no-group"});
  EXPECT_EQ(run.out, "hi\nno-group\n") << run.err;
  CommandResult remover = Nodectl({"run", "--name", "remover", "app:v1", "rm", "-rf", "/opt/app"});
  ASSERT_EQ(remover.exit_code, 0) << remover.err;
  CommandResult diff2 = Nodectl({"diff", "remover"});
  EXPECT_THAT(diff2.out, HasSubstr("D /opt/app"));
  ASSERT_EQ(Nodectl({"commit", "remover", "app:v2"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"rm", "remover"}).exit_code, 0);
  CommandResult json = Nodectl({"--format", "json", "images"});
  auto size_of = [&](const std::string& name) -> long long {
    size_t at = json.out.find("\"" + name + "\"");
    if (at == std::string::npos) return -1;
    size_t s = json.out.find("\"sizeBytes\": \"", at);
    return s == std::string::npos ? -1 : std::stoll(json.out.substr(s + 14));
  };
  long long v1 = size_of("app:v1");
  long long v2 = size_of("app:v2");
  EXPECT_GT(v1, 512 * 1024);
  EXPECT_GE(v2, v1) << json.out;
  CommandResult history2 = Nodectl({"history", "app:v2"});
  EXPECT_EQ(std::count(history2.out.begin(), history2.out.end(), '\n'), 4) << history2.out;

  // df and prune: the app images are unused, so all their bytes are reclaimable; prune -a
  // removes them and never busybox's layer, which busybox still needs.
  CommandResult df = Nodectl({"system", "df"});
  ASSERT_EQ(df.exit_code, 0) << df.err;
  EXPECT_THAT(df.out, HasSubstr("Images"));
  ASSERT_EQ(Nodectl({"rmi", "app:v1"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"rmi", "app:v2"}).exit_code, 0);
  CommandResult prune = Nodectl({"image", "prune"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  EXPECT_THAT(prune.out, HasSubstr("Total reclaimed space"));
  EXPECT_EQ(Sh("echo still-runs").out, "still-runs\n");
}

}  // namespace
}  // namespace nodeagent::testing
