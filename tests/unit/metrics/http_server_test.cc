// node-metricsd's /metrics endpoint on a real loopback socket (port 0), with CivetWeb's client.

#include <civetweb.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <zlib.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/metrics/http/metrics_http_server.h"

namespace nodeagent::metrics {
namespace {

using ::testing::HasSubstr;

// A TextCollectable whose text says how often it was asked.
class CountingCollectable : public TextCollectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override { return {}; }
  void AppendText(std::string* out) const override {
    ++calls;
    // Long and repetitive, like a real scrape: gzip must shrink it.
    for (int i = 0; i < 200; ++i) {
      absl::StrAppend(out, "demo_total{id=\"/nodeagent/", i, "\"} ", calls, "\n");
    }
  }
  mutable int calls = 0;
};

struct Response {
  int status = 0;
  std::string encoding;
  std::string body;
};

Response Get(int port, const std::string& method, const std::string& path,
             const std::string& extra_headers) {
  char error[256] = "";
  mg_connection* conn =
      mg_download("127.0.0.1", port, 0, error, sizeof(error), "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n",
                  method.c_str(), path.c_str(), extra_headers.c_str());
  Response r;
  if (conn == nullptr) {
    ADD_FAILURE() << "request: " << error;
    return r;
  }
  r.status = mg_get_response_info(conn)->status_code;
  if (const char* e = mg_get_header(conn, "Content-Encoding")) r.encoding = e;
  if (method != "HEAD") {
    char buf[4096];
    int n;
    while ((n = mg_read(conn, buf, sizeof(buf))) > 0) r.body.append(buf, static_cast<size_t>(n));
  }
  mg_close_connection(conn);
  return r;
}

std::string Gunzip(const std::string& data) {
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  char buf[16384];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void Start(int gzip_level) {
    auto registry = std::make_shared<prometheus::Registry>();
    prometheus::BuildGauge()
        .Name("plain_gauge")
        .Help("A gauge.")
        .Register(*registry)
        .Add({})
        .Set(3);
    auto started = MetricsHttpServer::Start(
        {.address = "127.0.0.1:0", .threads = 2, .gzip_level = gzip_level}, {registry, counting_});
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
    ASSERT_EQ(server_->ports().size(), 1u);
    port_ = server_->ports()[0];
    ASSERT_GT(port_, 0);
  }

  std::shared_ptr<CountingCollectable> counting_ = std::make_shared<CountingCollectable>();
  std::unique_ptr<MetricsHttpServer> server_;
  int port_ = 0;
};

TEST_F(MetricsHttpServerTest, ServesEverySourceAtScrapeTime) {
  Start(1);
  Response first = Get(port_, "GET", "/metrics", "");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.encoding, "");
  EXPECT_THAT(first.body, HasSubstr("# TYPE plain_gauge gauge\nplain_gauge 3\n"));
  EXPECT_THAT(first.body, HasSubstr("demo_total{id=\"/nodeagent/7\"} 1\n"));
  Response second = Get(port_, "GET", "/metrics", "");
  EXPECT_THAT(second.body, HasSubstr("demo_total{id=\"/nodeagent/7\"} 2\n"));
  EXPECT_EQ(counting_->calls, 2);
}

TEST_F(MetricsHttpServerTest, GzipsWhenAccepted) {
  Start(1);
  Response gz = Get(port_, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
  EXPECT_EQ(gz.status, 200);
  EXPECT_EQ(gz.encoding, "gzip");
  std::string text = Gunzip(gz.body);
  EXPECT_THAT(text, HasSubstr("demo_total{id=\"/nodeagent/199\"} 1\n"));
  EXPECT_LT(gz.body.size(), text.size() / 4);
  Response refused = Get(port_, "GET", "/metrics", "Accept-Encoding: gzip;q=0, identity\r\n");
  EXPECT_EQ(refused.encoding, "");
  EXPECT_THAT(refused.body, HasSubstr("plain_gauge 3\n"));
}

TEST_F(MetricsHttpServerTest, LevelMinusOneNeverGzips) {
  Start(-1);
  Response r = Get(port_, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
  EXPECT_EQ(r.encoding, "");
  EXPECT_THAT(r.body, HasSubstr("plain_gauge 3\n"));
}

TEST_F(MetricsHttpServerTest, OnlyGetAndHeadOnMetrics) {
  Start(1);
  Response head = Get(port_, "HEAD", "/metrics", "");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(Get(port_, "POST", "/metrics", "Content-Length: 0\r\n").status, 405);
  EXPECT_EQ(Get(port_, "GET", "/other", "").status, 404);
}

TEST(MetricsHttpServer, RejectsBadLevelsAndTakenAddresses) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      MetricsHttpServer::Start({.address = "127.0.0.1:0", .gzip_level = 4}, {}).status()));
  auto first = MetricsHttpServer::Start({.address = "127.0.0.1:0"}, {});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      MetricsHttpServer::Start({.address = absl::StrCat("127.0.0.1:", (*first)->ports()[0])}, {});
  EXPECT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("serve /metrics on"));
}

TEST(Gzip, RoundTripsAtEveryLevelAndGrowsItsBuffer) {
  // Random bytes do not compress: the output buffer must grow past its first guess.
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245 + 12345;
    noise.push_back(static_cast<char>(x >> 24));
  }
  auto z = GzipCompress(noise, 1);
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(Gunzip(*z), noise);
  EXPECT_TRUE(absl::IsInvalidArgument(GzipCompress("x", 4).status()));

  std::string text;
  for (int i = 0; i < 1000; ++i) absl::StrAppend(&text, "line ", i % 17, "\n");
  for (int level : {0, 1, 2, 3}) {
    z = GzipCompress(text, level);
    ASSERT_TRUE(z.ok()) << z.status();
    EXPECT_EQ(static_cast<unsigned char>((*z)[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>((*z)[1]), 0x8b);
    EXPECT_EQ(Gunzip(*z), text);
  }
}

TEST(AcceptsGzip, ParsesTheHeader) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("identity, gzip;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip(""));
}

}  // namespace
}  // namespace nodeagent::metrics
