#pragma once

// node-metricsd's HTTP endpoint: GET /metrics in Prometheus's text exposition format (0.0.4),
// served by CivetWeb (the web server prometheus-cpp's Exposer wraps) from the same
// prometheus-cpp Collectables. It replaces the Exposer for two reasons, both measured on a
// 500-container scrape (tests/bench/metrics_scrape.sh): the Exposer serializes through
// iostreams (a quarter of the CPU of a scrape), and it gzips with zlib at its default level 6,
// with no setting to change it (another quarter). Here a TextCollectable writes its text
// itself, and gzip is ISA-L's igzip (already the image service's inflater) at its fastest
// level: on a 2 MB scrape about 3 times faster than zlib's fastest level, for output as small
// as zlib's level 6.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/metrics/core/prometheus_collector.h"

struct mg_context;
struct mg_connection;

namespace nodeagent::metrics {

// gzip (RFC 1952) of `data` by ISA-L at igzip `level` (0 fastest .. 3 smallest).
absl::StatusOr<std::string> GzipCompress(absl::string_view data, int level);

// Whether an Accept-Encoding header value accepts gzip ("gzip", "gzip;q=0.5", "*"; not
// "gzip;q=0").
bool AcceptsGzip(absl::string_view accept_encoding);

// The text of every collectable, in order: TextCollectables write their own, others go
// through prometheus-cpp's TextSerializer.
std::string RenderMetricsText(const std::vector<std::shared_ptr<prometheus::Collectable>>& sources);

class MetricsHttpServer {
 public:
  struct Options {
    // "127.0.0.1:9323"; port 0 picks a free port.
    std::string address;
    // Worker threads (concurrent scrapes).
    int threads = 2;
    // igzip level (0..3) of responses when the scraper accepts gzip; -1 never compresses.
    // Level 1 is as fast as 0 (on scrape text) and compresses as well as 3.
    int gzip_level = 1;
  };

  // Listens on `options.address` and serves `sources` on /metrics until destroyed.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      Options options, std::vector<std::shared_ptr<prometheus::Collectable>> sources);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The TCP ports listened on (the real one when port 0 was asked for).
  std::vector<int> ports() const;

 private:
  MetricsHttpServer(Options options, std::vector<std::shared_ptr<prometheus::Collectable>> sources)
      : options_(std::move(options)), sources_(std::move(sources)) {}
  static int Handle(mg_connection* conn, void* self);
  int Serve(mg_connection* conn) const;

  const Options options_;
  const std::vector<std::shared_ptr<prometheus::Collectable>> sources_;
  mg_context* context_ = nullptr;
};

}  // namespace nodeagent::metrics
