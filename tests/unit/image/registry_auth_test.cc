#include "services/image/core/registry_auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace nodeagent::image {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(ParseAuthChallengeTest, DockerBearer) {
  absl::StatusOr<AuthChallenge> c = ParseAuthChallenge(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
      R"(scope="repository:library/busybox:pull")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_THAT(c->params, UnorderedElementsAre(Pair("realm", "https://auth.docker.io/token"),
                                              Pair("service", "registry.docker.io"),
                                              Pair("scope", "repository:library/busybox:pull")));
}

TEST(ParseAuthChallengeTest, CommasAndEscapesInQuotesAndBareTokens) {
  absl::StatusOr<AuthChallenge> c = ParseAuthChallenge(
      R"(BEARER Realm="http://h/t?a=1", scope="repository:a:pull,push" , x=bare, q="say \"hi\"")");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "http://h/t?a=1");
  EXPECT_EQ(c->params["scope"], "repository:a:pull,push");
  EXPECT_EQ(c->params["x"], "bare");
  EXPECT_EQ(c->params["q"], "say \"hi\"");
}

TEST(ParseAuthChallengeTest, BasicAndBadInput) {
  absl::StatusOr<AuthChallenge> basic = ParseAuthChallenge(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(basic.ok());
  EXPECT_EQ(basic->scheme, "basic");
  EXPECT_EQ(basic->params["realm"], "Registry Realm");
  EXPECT_EQ(ParseAuthChallenge("Basic").value().scheme, "basic");
  EXPECT_EQ(ParseAuthChallenge("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ParseAuthChallenge(R"(Bearer realm="open)").status().message(),
              HasSubstr("unterminated quote"));
  EXPECT_THAT(ParseAuthChallenge("Bearer =x").status().message(), HasSubstr("name=value"));
}

TEST(AuthEncodingTest, RoundTripAndDockerValue) {
  // The value `docker login` writes for user "alice", password "s3cret:with:colons".
  Credentials c{"alice", "s3cret:with:colons"};
  EXPECT_EQ(EncodeAuth(c), "YWxpY2U6czNjcmV0OndpdGg6Y29sb25z");
  absl::StatusOr<Credentials> back = DecodeAuth(EncodeAuth(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->username, "alice");
  EXPECT_EQ(back->password, "s3cret:with:colons");
  EXPECT_EQ(DecodeAuth("!!!").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(DecodeAuth("bm9jb2xvbg==").status().message(), HasSubstr("user:password"));
}

class CredentialStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/nodeagent-auth-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/auth.json";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string Read() {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(CredentialStoreTest, PutGetRemoveKeepsOtherKeysAndIsPrivate) {
  // A file that already has other registries and keys of Docker's config.json.
  std::ofstream(path_) << R"({"auths":{"other.example":{"auth":"Ym9iOnB3"}},"psFormat":"x"})";
  CredentialStore store(path_);
  EXPECT_FALSE(store.Get("127.0.0.1:5000").value().has_value());
  ASSERT_TRUE(store.Put("127.0.0.1:5000", {"alice", "pw"}).ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::optional<Credentials> got = store.Get("127.0.0.1:5000").value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->username, "alice");
  EXPECT_EQ(got->password, "pw");
  EXPECT_EQ(store.Get("other.example").value()->username, "bob");
  EXPECT_THAT(Read(), HasSubstr("\"psFormat\": \"x\""));

  EXPECT_TRUE(store.Remove("127.0.0.1:5000").value());
  EXPECT_FALSE(store.Remove("127.0.0.1:5000").value());
  EXPECT_FALSE(store.Get("127.0.0.1:5000").value().has_value());
  EXPECT_TRUE(store.Get("other.example").value().has_value());
}

TEST_F(CredentialStoreTest, MissingFileIsEmptyAndABrokenOneIsAnError) {
  CredentialStore store(path_);
  EXPECT_FALSE(store.Get("r.example").value().has_value());
  EXPECT_FALSE(store.Remove("r.example").value());
  std::ofstream(path_) << "not json";
  EXPECT_EQ(store.Get("r.example").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Put("r.example", {"a", "b"}).code(), absl::StatusCode::kFailedPrecondition);
  std::ofstream(path_, std::ios::trunc) << R"({"auths":{"r.example":{"auth":"###"}}})";
  EXPECT_THAT(store.Get("r.example").status().message(), HasSubstr("not base64"));
}

}  // namespace
}  // namespace nodeagent::image
