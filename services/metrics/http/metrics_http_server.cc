#include "services/metrics/http/metrics_http_server.h"

#include <civetweb.h>
#include <isa-l/igzip_lib.h>
#include <prometheus/text_serializer.h>

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/log.h"

namespace nodeagent::metrics {

absl::StatusOr<std::string> GzipCompress(absl::string_view data, int level) {
  static constexpr uint32_t kLevelBufferSize[] = {0, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT,
                                                  ISAL_DEF_LVL3_DEFAULT};
  if (level < 0 || level > ISAL_DEF_MAX_LEVEL) {
    return absl::InvalidArgumentError(absl::StrCat("gzip level ", level, ": not in 0..3"));
  }
  // The stream holds its hash tables (hundreds of kB): on the heap, not a worker's stack.
  auto stream = std::make_unique<isal_zstream>();
  isal_zstream& z = *stream;
  isal_deflate_init(&z);
  std::unique_ptr<uint8_t[]> level_buffer(new uint8_t[kLevelBufferSize[level] + 1]);
  z.level = static_cast<uint32_t>(level);
  z.level_buf = level_buffer.get();
  z.level_buf_size = kLevelBufferSize[level];
  z.gzip_flag = IGZIP_GZIP;
  z.end_of_stream = 1;
  z.flush = NO_FLUSH;
  z.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uint32_t>(data.size());
  // Text compresses at least 3:1; the buffer grows should it not.
  std::string out(data.size() / 2 + 1024, '\0');
  size_t written = 0;
  while (true) {
    z.next_out = reinterpret_cast<uint8_t*>(out.data() + written);
    z.avail_out = static_cast<uint32_t>(out.size() - written);
    int rc = isal_deflate(&z);
    written = out.size() - z.avail_out;
    if (rc != COMP_OK) {
      return absl::InternalError(absl::StrCat("gzip ", data.size(), " bytes: isal_deflate: ", rc));
    }
    if (z.internal_state.state == ZSTATE_END) break;
    out.resize(out.size() * 2);
  }
  out.resize(written);
  return out;
}

bool AcceptsGzip(absl::string_view accept_encoding) {
  for (absl::string_view coding : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(coding, ';');
    absl::string_view name = absl::StripAsciiWhitespace(parts[0]);
    if (!absl::EqualsIgnoreCase(name, "gzip") && name != "*") continue;
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view param = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&param, "q=") && !absl::SimpleAtod(param, &q)) q = 0;
    }
    return q > 0;
  }
  return false;
}

std::string RenderMetricsText(
    const std::vector<std::shared_ptr<prometheus::Collectable>>& sources) {
  std::string out;
  for (const std::shared_ptr<prometheus::Collectable>& source : sources) {
    if (const auto* text = dynamic_cast<const TextCollectable*>(source.get())) {
      text->AppendText(&out);
    } else {
      out.append(prometheus::TextSerializer().Serialize(source->Collect()));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    Options options, std::vector<std::shared_ptr<prometheus::Collectable>> sources) {
  if (options.gzip_level < -1 || options.gzip_level > ISAL_DEF_MAX_LEVEL) {
    return absl::InvalidArgumentError(
        absl::StrCat("gzip level ", options.gzip_level, ": not in -1..", ISAL_DEF_MAX_LEVEL));
  }
  std::unique_ptr<MetricsHttpServer> server(
      new MetricsHttpServer(std::move(options), std::move(sources)));
  mg_init_library(0);
  std::string threads = absl::StrCat(server->options_.threads);
  const char* config[] = {"listening_ports", server->options_.address.c_str(), "num_threads",
                          threads.c_str(), nullptr};
  mg_init_data init;
  std::memset(&init, 0, sizeof(init));
  init.configuration_options = config;
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error;
  std::memset(&error, 0, sizeof(error));
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    mg_exit_library();
    return absl::UnavailableError(absl::StrCat("serve /metrics on \"", server->options_.address,
                                               "\": ", error_text[0] ? error_text : "failed"));
  }
  mg_set_request_handler(server->context_, "/metrics$", &MetricsHttpServer::Handle, server.get());
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (context_ != nullptr) {
    // Waits for the requests being served.
    mg_stop(context_);
    mg_exit_library();
  }
}

std::vector<int> MetricsHttpServer::ports() const {
  mg_server_port ports[8];
  int n = mg_get_server_ports(context_, 8, ports);
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(ports[i].port);
  return out;
}

int MetricsHttpServer::Handle(mg_connection* conn, void* self) {
  return static_cast<const MetricsHttpServer*>(self)->Serve(conn);
}

int MetricsHttpServer::Serve(mg_connection* conn) const {
  const mg_request_info* request = mg_get_request_info(conn);
  bool head = std::strcmp(request->request_method, "HEAD") == 0;
  if (!head && std::strcmp(request->request_method, "GET") != 0) {
    mg_response_header_start(conn, 405);
    mg_response_header_add(conn, "Allow", "GET, HEAD", -1);
    mg_response_header_add(conn, "Content-Length", "0", -1);
    mg_response_header_send(conn);
    return 405;
  }
  std::string body = RenderMetricsText(sources_);
  const char* accept = mg_get_header(conn, "Accept-Encoding");
  bool gzip = options_.gzip_level >= 0 && accept != nullptr && AcceptsGzip(accept);
  if (gzip) {
    absl::StatusOr<std::string> compressed = GzipCompress(body, options_.gzip_level);
    if (compressed.ok()) {
      body = *std::move(compressed);
    } else {
      LogWarning("/metrics: %s; serving it uncompressed", compressed.status().ToString());
      gzip = false;
    }
  }
  std::string length = absl::StrCat(body.size());
  mg_response_header_start(conn, 200);
  mg_response_header_add(conn, "Content-Type", "text/plain; version=0.0.4; charset=utf-8", -1);
  if (gzip) mg_response_header_add(conn, "Content-Encoding", "gzip", -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_send(conn);
  if (!head) mg_write(conn, body.data(), body.size());
  return 200;
}

}  // namespace nodeagent::metrics
