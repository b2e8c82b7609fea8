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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
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
  // `htpasswd`: a file of bcrypt entries the registry asks Basic credentials for.
  Registry(const std::string& dir, bool tls, const std::string& htpasswd = "")
      : dir_(dir), port_(FreePort()) {
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
    if (!htpasswd.empty()) {
      absl::StrAppend(&config, "auth:\n  htpasswd:\n    realm: nodeagent-e2e\n    path: ", htpasswd,
                      "\n");
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
      if (r.out == "200" || (!htpasswd.empty() && r.out == "401")) {
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

TEST_F(ImageE2E, RegistryWithBasicAuthNeedsLogin) {
  // Debian's docker-registry over HTTPS with htpasswd auth (bcrypt entries, as it requires).
  std::string dir = MakeTempDir(base_, "registry-auth");
  CommandResult htpasswd =
      RunCommand({"htpasswd", "-Bbc", dir + "/htpasswd", "alice", "correct horse"});
  ASSERT_EQ(htpasswd.exit_code, 0) << htpasswd.err;
  Registry registry(dir, /*tls=*/true, dir + "/htpasswd");
  ASSERT_TRUE(registry.ready()) << ReadText(dir + "/registry.log");
  const std::string host = registry.host();
  const std::string ref = host + "/e2e/private:v1";
  const std::string auth_file = ImageRoot() + "/auth.json";

  // Without credentials: a clear error naming the registry, for push and pull.
  CommandResult push = Nodectl({"push", "-q", "--ca-file", registry.cert(), "busybox", ref});
  EXPECT_EQ(push.exit_code, 1);
  EXPECT_THAT(push.err, HasSubstr("registry " + host + " needs authentication"));
  EXPECT_THAT(push.err, HasSubstr("nodectl login " + host));
  CommandResult pull = Nodectl({"pull", "-q", "--ca-file", registry.cert(), ref});
  EXPECT_EQ(pull.exit_code, 1);
  EXPECT_THAT(pull.err, HasSubstr("registry " + host + " needs authentication"));

  // A wrong password is refused and nothing is saved.
  CommandResult wrong = Nodectl(
      {"login", "--ca-file", registry.cert(), host, "-u", "alice", "--password-stdin"}, "wrong\n");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("rejected the credentials for user \"alice\""));
  EXPECT_FALSE(Exists(auth_file));

  CommandResult login =
      Nodectl({"login", "--ca-file", registry.cert(), host, "-u", "alice", "--password-stdin"},
              "correct horse\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_THAT(login.out, HasSubstr("Login Succeeded"));
  struct stat st;
  ASSERT_EQ(stat(auth_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(ReadText(auth_file), HasSubstr("\"" + host + "\""));
  EXPECT_THAT(ReadText(auth_file), Not(HasSubstr("correct horse")));  // base64, as Docker's

  push = Nodectl({"push", "-q", "--ca-file", registry.cert(), "busybox", ref});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  std::string pushed = Trim(push.out);
  // skopeo with the same credentials sees what was pushed.
  CommandResult inspect = RunCommand({"skopeo", "inspect", "--tls-verify=false", "--creds",
                                      "alice:correct horse", "docker://" + ref});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(SkopeoDigest(inspect.out), pushed);
  // skopeo copies it to a new name (recompressing its layer), and a pull of that downloads
  // the new blobs with the saved credentials.
  const std::string copy = host + "/e2e/private-copy:v1";
  CommandResult skopeo_copy =
      RunCommand({"skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                  "--src-creds", "alice:correct horse", "--dest-creds", "alice:correct horse",
                  "docker://" + ref, "docker://" + copy});
  ASSERT_EQ(skopeo_copy.exit_code, 0) << skopeo_copy.err;
  inspect = RunCommand({"skopeo", "inspect", "--tls-verify=false", "--creds", "alice:correct horse",
                        "docker://" + copy});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  pull = Nodectl({"pull", "--ca-file", registry.cert(), copy});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_THAT(pull.err, HasSubstr("Digest: " + SkopeoDigest(inspect.out)));

  CommandResult logout = Nodectl({"logout", host});
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_THAT(logout.out, HasSubstr("Removed login credentials for " + host));
  pull = Nodectl({"pull", "-q", "--ca-file", registry.cert(), copy});
  EXPECT_EQ(pull.exit_code, 1);
  EXPECT_THAT(pull.err, HasSubstr("needs authentication"));
  Nodectl({"rmi", copy});
}

// A read-only registry with Docker's token auth, serving one image from an OCI layout: every
// /v2/ request needs "Authorization: Bearer <token>", else 401 with a Bearer challenge; the
// token comes from /token?service=...&scope=... for Basic bob:hunter2 only. Debian's
// docker-registry has no token server of its own, hence this stand-in (real HTTP on loopback).
constexpr char kBearerRegistryPy[] = R"PY(
import base64, http.server, json, os, re, sys, threading
layout, port_file = sys.argv[1], sys.argv[2]
# Optional: a token expires after this many requests (real ones expire after minutes; this
# makes them expire between the requests of one pull). Tokens issued are counted in a file.
uses = int(sys.argv[3]) if len(sys.argv) > 3 else 0
tokens, lock = {}, threading.Lock()
entry = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]
def authorized(header):
    with lock:
        t = header[len("Bearer "):] if header and header.startswith("Bearer ") else None
        if t not in tokens or tokens[t] == 0: return False
        if tokens[t] > 0: tokens[t] -= 1
        return True
class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def handle_any(self):
        if self.path.startswith("/token?"):
            good = "Basic " + base64.b64encode(b"bob:hunter2").decode()
            if self.headers.get("Authorization") != good: return self.reply(401)
            if "service=fake-registry" not in self.path or \
               "scope=repository%3Ae2e%2Fbearer%3Apull" not in self.path: return self.reply(400)
            with lock:
                token = "tok-" + os.urandom(8).hex()
                tokens[token] = uses if uses > 0 else -1
                open(port_file + ".tokens", "w").write(str(len(tokens)))
            return self.reply(200, json.dumps({"token": token}).encode())
        if not authorized(self.headers.get("Authorization")):
            realm = "http://127.0.0.1:%d/token" % self.server.server_address[1]
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate",
                'Bearer realm="%s",service="fake-registry",scope="repository:e2e/bearer:pull"' % realm)])
        if self.path == "/v2/": return self.reply(200, b"{}")
        m = re.fullmatch(r"/v2/e2e/bearer/(manifests|blobs)/(.+)", self.path)
        if not m: return self.reply(404)
        ref = entry["digest"] if m.group(2) == "v1" else m.group(2)
        path = os.path.join(layout, "blobs", "sha256", ref.split(":")[-1])
        if not os.path.isfile(path): return self.reply(404)
        headers = [("Docker-Content-Digest", ref)]
        if m.group(1) == "manifests": headers.append(("Content-Type", entry["mediaType"]))
        self.reply(200, open(path, "rb").read(), headers)
    do_GET = do_HEAD = handle_any
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(port_file + ".tmp", "w").write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
)PY";

// The token registry stand-in above, serving a fresh unique image (so that a pull fetches its
// blobs), on loopback until destroyed.
struct BearerRegistry {
  std::string host;      // 127.0.0.1:PORT
  std::string image_id;  // what `nodectl import` printed for the image
  std::string port_file;
  pid_t pid = -1;
  ~BearerRegistry() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
  // Tokens the server issued so far.
  int TokensIssued() const {
    int n = 0;
    return absl::SimpleAtoi(Trim(ReadText(port_file + ".tokens")), &n) ? n : 0;
  }
};

// `name` keeps the test's files apart; `uses`: requests each token is good for (0: any number).
using NodectlFn = std::function<CommandResult(std::vector<std::string>)>;
void StartBearerRegistry(const std::string& base, const NodectlFn& nodectl, const std::string& name,
                         int uses, std::unique_ptr<BearerRegistry>* out) {
  std::string src = base + "/" + name + "-root";
  ASSERT_EQ(RunCommand({"sh", "-c",
                        "mkdir -p " + src + " && head -c 100000 /dev/urandom > " + src +
                            "/random && tar -C " + src + " -czf " + src + ".tar.gz ."})
                .exit_code,
            0);
  auto registry = std::make_unique<BearerRegistry>();
  CommandResult imported = nodectl({"import", src + ".tar.gz", name + "-src:v1"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  registry->image_id = Trim(imported.out);
  std::string layout = base + "/" + name + "-layout";
  ASSERT_EQ(RunCommand({"mkdir", "-p", layout}).exit_code, 0);
  ASSERT_EQ(nodectl({"save", "-o", layout + ".tar", name + "-src:v1"}).exit_code, 0);
  ASSERT_EQ(RunCommand({"tar", "-C", layout, "-xf", layout + ".tar"}).exit_code, 0);
  ASSERT_EQ(nodectl({"rmi", name + "-src:v1"}).exit_code, 0);

  std::string script = base + "/" + name + "_registry.py";
  std::ofstream(script) << kBearerRegistryPy;
  registry->port_file = base + "/" + name + ".port";
  std::string uses_arg = std::to_string(uses);
  const char* argv[] = {"python3",        script.c_str(),
                        layout.c_str(),   registry->port_file.c_str(),
                        uses_arg.c_str(), nullptr};
  ASSERT_EQ(
      posix_spawnp(&registry->pid, "python3", nullptr, nullptr, const_cast<char**>(argv), environ),
      0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!Exists(registry->port_file) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(Exists(registry->port_file));
  registry->host = "127.0.0.1:" + Trim(ReadText(registry->port_file));
  *out = std::move(registry);
}

TEST_F(ImageE2E, RegistryWithTokenAuthGetsABearerToken) {
  std::unique_ptr<BearerRegistry> registry;
  ASSERT_NO_FATAL_FAILURE(StartBearerRegistry(
      base_, [](std::vector<std::string> a) { return Nodectl(a); }, "bearer", 0, &registry));
  const std::string host = registry->host;
  const std::string ref = host + "/e2e/bearer:v1";

  // Anonymous: the token server refuses, and the error says what to do.
  CommandResult pull = Nodectl({"pull", "-q", "--plain-http", ref});
  EXPECT_EQ(pull.exit_code, 1);
  EXPECT_THAT(pull.err, HasSubstr("registry " + host));
  EXPECT_THAT(pull.err, HasSubstr("refused an anonymous token"));
  EXPECT_THAT(pull.err, HasSubstr("nodectl login " + host));
  CommandResult wrong =
      Nodectl({"login", "--plain-http", host, "-u", "bob", "--password-stdin"}, "hunter3\n");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("rejected the credentials for user \"bob\""));

  CommandResult login =
      Nodectl({"login", "--plain-http", host, "-u", "bob", "--password-stdin"}, "hunter2\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  pull = Nodectl({"pull", "--plain-http", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(Trim(pull.out), registry->image_id);  // the same image id (config digest)
  EXPECT_THAT(pull.err, HasSubstr("Pull complete"));
  EXPECT_EQ(Nodectl({"history", ref}).exit_code, 0);
  Nodectl({"rmi", ref});
  Nodectl({"logout", host});
}

// Tokens that expire between the requests of one pull (real ones last minutes; a big pull
// outlives them): every 401 gets a fresh token from the token server, and the pull completes.
TEST_F(ImageE2E, ATokenExpiringMidPullIsRenewed) {
  std::unique_ptr<BearerRegistry> registry;
  ASSERT_NO_FATAL_FAILURE(StartBearerRegistry(
      base_, [](std::vector<std::string> a) { return Nodectl(a); }, "expiring", 2, &registry));
  // The stand-in serves one repository name, e2e/bearer.
  const std::string ref = registry->host + "/e2e/bearer:v1";
  CommandResult login = Nodectl(
      {"login", "--plain-http", registry->host, "-u", "bob", "--password-stdin"}, "hunter2\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  const int before = registry->TokensIssued();
  CommandResult pull = Nodectl({"pull", "-q", "--plain-http", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(Trim(pull.out), registry->image_id);
  EXPECT_GE(registry->TokensIssued() - before, 2) << "the tokens did not expire mid-pull";
  Nodectl({"rmi", ref});
  Nodectl({"logout", registry->host});
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

  // An index with no linux/amd64 entry: a clear error naming what it has, nothing stored.
  std::string arm_only = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:)",
      arm_manifest_hex, R"(","size":)", arm_manifest.size(),
      R"(,"platform":{"os":"linux","architecture":"arm64"}}]})");
  std::string arm_list_hex = put(arm_only);
  std::ofstream(layout + "/index.json", std::ios::trunc) << absl::StrCat(
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:)",
      arm_list_hex, R"(","size":)", arm_only.size(),
      R"(,"annotations":{"org.opencontainers.image.ref.name":"arm"}}]})");
  std::string arm_ref = http_->host() + "/e2e/arm-only:v1";
  copy = RunCommand({"skopeo", "copy", "-q", "--all", "--dest-tls-verify=false",
                     "oci:" + layout + ":arm", "docker://" + arm_ref});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  CommandResult none = Nodectl({"pull", "-q", "--plain-http", arm_ref});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err,
              HasSubstr("image index has no manifest for linux/amd64 (it has: linux/arm64)"));
  EXPECT_EQ(Nodectl({"history", arm_ref}).exit_code, 1);  // nothing was stored
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

TEST_F(ImageE2E, SkipUnpackKeepsBlobsAndTheFirstContainerUnpacks) {
  // An image the node does not have: a unique gzip layer with busybox in it, pushed, removed.
  std::string ref = http_->host() + "/e2e/lazy:v1";
  std::string src = base_ + "/lazy-root";
  ASSERT_EQ(RunCommand({"sh", "-c",
                        "mkdir -p " + src + "/bin && cp /bin/busybox " + src +
                            "/bin/ && echo lazy-" + std::to_string(::getpid()) + " > " + src +
                            "/lazy.txt && tar -C " + src + " -czf " + src + ".tar.gz ."})
                .exit_code,
            0);
  ASSERT_EQ(Nodectl({"import", src + ".tar.gz", "lazy-src:v1"}).exit_code, 0);
  ASSERT_EQ(Nodectl({"push", "-q", "--plain-http", "lazy-src:v1", ref}).exit_code, 0);
  ASSERT_EQ(Nodectl({"rmi", "lazy-src:v1"}).exit_code, 0);
  const std::string layers_before = RunCommand({"ls", ImageRoot() + "/layers"}).out;

  CommandResult pull = Nodectl({"pull", "--skip-unpack", "--plain-http", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_EQ(RunCommand({"ls", ImageRoot() + "/layers"}).out, layers_before);
  EXPECT_THAT(Nodectl({"--format", "json", "images"}).out, HasSubstr(ref));
  // proto3 JSON leaves out false: only unpacked images say "unpacked": true. Each image's
  // JSON starts with its names.
  auto unpacked = [&](const std::string& name) {
    for (absl::string_view image :
         absl::StrSplit(Nodectl({"--format", "json", "images"}).out, "\"names\"")) {
      if (absl::StrContains(image, name)) return absl::StrContains(image, "\"unpacked\": true");
    }
    return false;
  };
  EXPECT_FALSE(unpacked(ref));

  // The first container unpacks it.
  CommandResult run = Nodectl({"run", "--rm", ref, "/bin/busybox", "cat", "/lazy.txt"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "lazy-" + std::to_string(::getpid()) + "\n");
  EXPECT_TRUE(unpacked(ref));
  EXPECT_NE(RunCommand({"ls", ImageRoot() + "/layers"}).out, layers_before);

  // load --skip-unpack of the same image saved, then `image unpack`.
  std::string archive = base_ + "/lazy.tar";
  ASSERT_EQ(Nodectl({"save", "-o", archive, ref}).exit_code, 0);
  ASSERT_EQ(Nodectl({"rmi", ref}).exit_code, 0);
  EXPECT_EQ(RunCommand({"ls", ImageRoot() + "/layers"}).out, layers_before);
  CommandResult load = Nodectl({"load", "--skip-unpack", "-i", archive});
  ASSERT_EQ(load.exit_code, 0) << load.err;
  EXPECT_FALSE(unpacked(ref));
  CommandResult unpack = Nodectl({"image", "unpack", ref});
  ASSERT_EQ(unpack.exit_code, 0) << unpack.err;
  EXPECT_THAT(unpack.out, ::testing::StartsWith("sha256:"));
  EXPECT_TRUE(unpacked(ref));
  CommandResult missing = Nodectl({"image", "unpack", "no-such-image:v9"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no-such-image"));
  ASSERT_EQ(Nodectl({"rmi", ref}).exit_code, 0);
  EXPECT_EQ(RunCommand({"ls", ImageRoot() + "/layers"}).out, layers_before);
  EXPECT_EQ(RunCommand({"ls", "-A", ImageRoot() + "/tmp"}).out, "");
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
