#include "services/image/core/oci_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/image/core/digest.h"

namespace nodeagent::image {
namespace {

using ::testing::HasSubstr;

OciImageConfig Sample() {
  OciImageConfig config;
  config.created = absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(123456789);
  config.architecture = "amd64";
  config.config.env = {"PATH=/usr/bin:/bin", "A=b=c"};
  config.config.entrypoint = {"/bin/sh", "-c"};
  config.config.cmd = {"echo hello"};
  config.config.working_dir = "/srv";
  config.config.user = "1000:1000";
  config.config.labels = {{"org.example.a", "1"}, {"b", "two words"}};
  config.diff_ids = {Sha256Digest(std::string(64, 'a')), Sha256Digest(std::string(64, 'b'))};
  config.history = {OciHistoryEntry{config.created, "nodeagent import", "first", false},
                    OciHistoryEntry{config.created, "CMD [\"sh\"]", "", true}};
  return config;
}

TEST(OciConfigTest, RoundTrip) {
  OciImageConfig config = Sample();
  absl::StatusOr<OciImageConfig> parsed = ParseOciConfig(SerializeOciConfig(config));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, config);
}

TEST(OciConfigTest, SerializationIsCanonical) {
  // Same content, same bytes, same image id: keys sorted, no whitespace.
  EXPECT_EQ(SerializeOciConfig(Sample()), SerializeOciConfig(Sample()));
  std::string json = SerializeOciConfig(Sample());
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.find("\": "), std::string::npos);
  EXPECT_EQ(json.find(", "), std::string::npos);
  EXPECT_LT(json.find("\"architecture\""), json.find("\"config\""));
  EXPECT_LT(json.find("\"config\""), json.find("\"created\""));
  EXPECT_THAT(json, HasSubstr("\"created\":\"2023-11-14T22:13:20.123456789Z\""));
  EXPECT_THAT(json, HasSubstr("\"rootfs\":{\"diff_ids\":[\"sha256:aaaa"));
  EXPECT_THAT(json, HasSubstr("\"Cmd\":[\"echo hello\"]"));
}

TEST(OciConfigTest, EmptyFieldsAreLeftOut) {
  OciImageConfig config;
  config.architecture = "amd64";
  std::string json = SerializeOciConfig(config);
  EXPECT_THAT(json, HasSubstr("\"config\":{}"));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("Env")));
  EXPECT_EQ(*ParseOciConfig(json), config);
}

TEST(OciConfigTest, ParsesDockerStyleConfig) {
  absl::StatusOr<OciImageConfig> config = ParseOciConfig(R"({
    "architecture": "amd64", "os": "linux", "created": "2024-05-01T10:00:00.5+02:00",
    "config": {"Env": ["A=1"], "Cmd": null, "Labels": null, "ExposedPorts": {"80/tcp": {}}},
    "rootfs": {"type": "layers", "diff_ids": []},
    "history": [{"created_by": "/bin/sh -c #(nop) CMD", "empty_layer": true}],
    "container_config": {"Hostname": "x"}
  })");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->created, absl::FromUnixSeconds(1714550400) + absl::Milliseconds(500));
  EXPECT_EQ(config->config.env, std::vector<std::string>{"A=1"});
  EXPECT_TRUE(config->config.cmd.empty());
  ASSERT_EQ(config->history.size(), 1u);
  EXPECT_TRUE(config->history[0].empty_layer);
}

TEST(OciConfigTest, RejectsMalformed) {
  struct Case {
    const char* json;
    const char* says;
  };
  const Case cases[] = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "must be an object"},
      {R"({"rootfs": {"type": "layers", "diff_ids": ["md5:1"]}})", "rootfs.diff_ids"},
      {R"({"rootfs": {"type": "zfs", "diff_ids": []}})", "rootfs.type"},
      {R"({"created": 5, "rootfs": {"type": "layers"}})", "\"created\" must be a string"},
      {R"({"created": "yesterday", "rootfs": {"type": "layers"}})", "RFC 3339"},
      {R"({"config": {"Env": "A=1"}, "rootfs": {"type": "layers"}})", "\"Env\""},
      {R"({"config": {"Env": [1]}, "rootfs": {"type": "layers"}})", "\"Env\""},
      {R"({"config": {"Labels": {"a": 1}}, "rootfs": {"type": "layers"}})", "\"Labels\""},
      {R"({"history": [1], "rootfs": {"type": "layers"}})", "history"},
      {R"({"config": []})", "\"config\""},
      {R"({"os": "linux"})", "rootfs"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<OciImageConfig> config = ParseOciConfig(c.json);
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(config.status().message(), HasSubstr(c.says)) << c.json;
  }
}

TEST(OciConfigTest, RejectsDeepNestingWithoutRecursingIntoIt) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(ParseOciConfig(deep).status().message(), HasSubstr("nested deeper"));
  // Brackets inside strings do not count.
  std::string in_string =
      R"({"rootfs": {"type": "layers"}, "os": ")" + std::string(1000, '[') + R"(\"["})";
  EXPECT_TRUE(ParseOciConfig(in_string).ok());
}

TEST(OciConfigTest, Rfc3339) {
  absl::Time t = absl::FromUnixSeconds(0);
  EXPECT_EQ(FormatRfc3339(t), "1970-01-01T00:00:00Z");
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00Z"), t);
  EXPECT_FALSE(ParseRfc3339("1970-01-01").ok());
}

TEST(OciConfigTest, HostArchitectureIsAGoarchName) {
  EXPECT_FALSE(HostOciArchitecture().empty());
#if defined(__x86_64__)
  EXPECT_EQ(HostOciArchitecture(), "amd64");
#endif
}

}  // namespace
}  // namespace nodeagent::image
