#include "services/image/core/registry_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"
#include "services/image/core/host_ops.h"
#include "services/image/core/oci_manifest.h"
#include "services/image/core/reference.h"

namespace nodeagent::image {
namespace {

constexpr size_t kStreamBuffer = 1 << 20;

const std::string& ManifestAccept() {
  static const std::string* accept =
      new std::string(absl::StrJoin({kMediaTypeOciIndex, kMediaTypeOciManifest,
                                     kMediaTypeDockerManifestList, kMediaTypeDockerManifest},
                                    ", "));
  return *accept;
}

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t HeaderCallback(char* data, size_t size, size_t count, void* opaque) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(opaque);
  absl::string_view line(data, size * count);
  if (absl::StartsWith(line, "HTTP/")) headers->clear();  // A new response (redirect, 100).
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    (*headers)[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

struct BodyState {
  std::string* body;
  int64_t max;
  bool too_big = false;
};

size_t BodyCallback(char* data, size_t size, size_t count, void* opaque) {
  auto* state = static_cast<BodyState*>(opaque);
  if (static_cast<int64_t>(state->body->size() + size * count) > state->max) {
    state->too_big = true;
    return 0;
  }
  state->body->append(data, size * count);
  return size * count;
}

// What an HTTP error answer means; `registry` and `username` ("" when anonymous) word the
// 401 case.
absl::Status StatusForHttp(const std::string& what, const HttpResponse& r,
                           absl::string_view registry, absl::string_view username) {
  std::string detail(r.body.substr(0, 300));
  std::string text = absl::StrCat(what, ": HTTP ", r.status, detail.empty() ? "" : ": ",
                                  absl::StripAsciiWhitespace(detail));
  switch (r.status) {
    case 401:
      return absl::UnauthenticatedError(absl::StrCat(
          "registry ", registry,
          username.empty() ? std::string(" needs authentication")
                           : absl::StrCat(" rejected the credentials for user \"", username, "\""),
          " (run: nodectl login ", registry, " -u USER --password-stdin): ", text));
    case 403:
      return absl::PermissionDeniedError(
          absl::StrCat("registry ", registry, " denied access: ", text));
    case 404:
      return absl::NotFoundError(text);
    case 429:
      return absl::ResourceExhaustedError(text);
    default:
      return r.status >= 500 ? absl::UnavailableError(text) : absl::FailedPreconditionError(text);
  }
}

absl::Status CurlError(const std::string& what, CURLcode code, const char* detail) {
  std::string text = absl::StrCat(what, ": ", detail[0] ? detail : curl_easy_strerror(code));
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
      return absl::UnavailableError(text);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

// A blob download driven by the reader: each call runs curl until some bytes are there.
class BlobStream {
 public:
  ~BlobStream() {
    if (multi_ != nullptr && easy_ != nullptr) curl_multi_remove_handle(multi_, easy_.get());
    easy_.reset();
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
  }

  absl::Status Start(
      Easy easy, Slist headers, std::string what,
      std::function<absl::Status(const std::string&, const HttpResponse&)> http_error,
      std::function<void(int64_t)> on_bytes) {
    easy_ = std::move(easy);
    headers_ = std::move(headers);
    http_error_ = std::move(http_error);
    if (headers_ != nullptr) curl_easy_setopt(easy_.get(), CURLOPT_HTTPHEADER, headers_.get());
    what_ = std::move(what);
    on_bytes_ = std::move(on_bytes);
    multi_ = curl_multi_init();
    if (multi_ == nullptr) return absl::ResourceExhaustedError("curl_multi_init failed");
    curl_easy_setopt(easy_.get(), CURLOPT_WRITEFUNCTION, &BlobStream::Write);
    curl_easy_setopt(easy_.get(), CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy_.get(), CURLOPT_ERRORBUFFER, error_);
    error_[0] = '\0';
    if (curl_multi_add_handle(multi_, easy_.get()) != CURLM_OK) {
      return absl::InternalError("curl_multi_add_handle failed");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> Next() {
    buffer_.clear();
    while (buffer_.empty() && !done_) {
      if (paused_) {
        paused_ = false;
        curl_easy_pause(easy_.get(), CURLPAUSE_CONT);
        if (!buffer_.empty()) break;
      }
      int running = 0;
      if (curl_multi_perform(multi_, &running) != CURLM_OK) {
        return absl::InternalError(absl::StrCat(what_, ": curl_multi_perform failed"));
      }
      if (!error_status_.ok()) return error_status_;
      if (running == 0) {
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
          if (msg->msg == CURLMSG_DONE) result_ = msg->data.result;
        }
        done_ = true;
        break;
      }
      if (buffer_.empty() && !paused_) curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    if (!error_status_.ok()) return error_status_;
    if (done_ && buffer_.empty()) {
      if (result_ != CURLE_OK) return CurlError(what_, result_, error_);
      long status = 0;
      curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status);
      if (status != 200) return http_error_(what_, HttpResponse{status, {}, error_body_});
    }
    return absl::string_view(buffer_);
  }

 private:
  static size_t Write(char* data, size_t size, size_t count, void* opaque) {
    auto* self = static_cast<BlobStream*>(opaque);
    size_t n = size * count;
    long status = 0;
    curl_easy_getinfo(self->easy_.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      // An error document: keep a little of it for the message.
      if (self->error_body_.size() < 1024)
        self->error_body_.append(data, std::min<size_t>(n, 1024));
      return n;
    }
    if (self->buffer_.size() >= kStreamBuffer) {
      self->paused_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    self->buffer_.append(data, n);
    self->total_ += static_cast<int64_t>(n);
    if (self->on_bytes_) self->on_bytes_(self->total_);
    return n;
  }

  Easy easy_;
  Slist headers_;
  std::function<absl::Status(const std::string&, const HttpResponse&)> http_error_;
  CURLM* multi_ = nullptr;
  std::string what_;
  std::function<void(int64_t)> on_bytes_;
  std::string buffer_;
  std::string error_body_;
  bool paused_ = false;
  bool done_ = false;
  CURLcode result_ = CURLE_OK;
  absl::Status error_status_;
  int64_t total_ = 0;
  char error_[CURL_ERROR_SIZE];
};

}  // namespace

std::string RegistryReference::Name() const {
  return absl::StrCat(registry, "/", repository, ":", tag.empty() ? "latest" : tag);
}

std::string RegistryReference::ManifestReference() const { return digest.empty() ? tag : digest; }

absl::StatusOr<RegistryReference> ParseRegistryReference(absl::string_view ref) {
  const std::string what = absl::StrCat("registry reference \"", ref, "\"");
  RegistryReference out;
  absl::string_view rest = ref;
  if (size_t at = rest.find('@'); at != absl::string_view::npos) {
    out.digest = std::string(rest.substr(at + 1));
    if (!ParseSha256Digest(out.digest).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": bad digest"));
    }
    rest = rest.substr(0, at);
  }
  size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": name the registry (e.g. 127.0.0.1:5000/", ref, ")"));
  }
  absl::string_view host = rest.substr(0, slash);
  if (host != "localhost" && host.find_first_of(".:") == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", host, "\" is not a registry host (there is no default)"));
  }
  // The name grammar (lowercase components, tag) is the same as for local names.
  absl::StatusOr<ImageName> name = ParseImageName(rest);
  if (!name.ok()) return Annotate(name.status(), what);
  out.registry = std::string(host);
  out.repository = name->repository.substr(host.size() + 1);
  // A digest alone means no tag.
  bool tag_given = rest.rfind(':') != absl::string_view::npos && rest.rfind(':') > rest.rfind('/');
  out.tag = (!out.digest.empty() && !tag_given) ? "" : name->tag;
  return out;
}

absl::StatusOr<RegistryOptions> WithCredentials(RegistryOptions options,
                                                absl::string_view registry) {
  if (options.credentials || options.credential_store == nullptr) return options;
  absl::StatusOr<std::optional<Credentials>> saved = options.credential_store->Get(registry);
  if (!saved.ok()) {
    return Annotate(saved.status(), absl::StrCat("credentials for registry ", registry));
  }
  options.credentials = *saved;
  return options;
}

RegistryClient::RegistryClient(std::string registry, RegistryOptions options)
    : registry_(std::move(registry)), options_(std::move(options)) {
  GlobalInit();
}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::Url(absl::string_view path) const {
  if (absl::StartsWith(path, "http://") || absl::StartsWith(path, "https://")) {
    return std::string(path);
  }
  return absl::StrCat(options_.plain_http ? "http://" : "https://", registry_, path);
}

void RegistryClient::ApplyTls(void* handle) const {
  CURL* curl = static_cast<CURL*>(handle);
  if (options_.skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "nodeagent/0.1");
  // Only the registry's own scheme; redirects to blob storage may switch http<->https.
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
}

absl::StatusOr<HttpResponse> RegistryClient::Perform(
    const std::string& method, const std::string& url,
    const std::map<std::string, std::string>& headers, absl::string_view body, int64_t max_body,
    const std::string& authorization) {
  const std::string full = Url(url);
  const std::string what = absl::StrCat(method, " ", full);
  Easy curl(curl_easy_init());
  if (curl == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  HttpResponse response;
  BodyState state{&response.body, max_body};
  char error[CURL_ERROR_SIZE] = {0};
  Slist list;
  for (const auto& [name, value] : headers) {
    list.reset(curl_slist_append(list.release(), absl::StrCat(name, ": ", value).c_str()));
  }
  // curl sends a custom Authorization header to this host only, never after a redirect
  // elsewhere (blob storage with signed URLs).
  if (!authorization.empty()) {
    list.reset(
        curl_slist_append(list.release(), absl::StrCat("Authorization: ", authorization).c_str()));
  }
  // No "Expect: 100-continue" round trip on uploads.
  list.reset(curl_slist_append(list.release(), "Expect:"));
  curl_easy_setopt(curl.get(), CURLOPT_URL, full.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &response.headers);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &BodyCallback);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, static_cast<long>(options_.timeout_seconds));
  ApplyTls(curl.get());
  if (method == "HEAD") {
    curl_easy_setopt(curl.get(), CURLOPT_NOBODY, 1L);
  } else if (method == "GET") {
    curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 5L);
  } else {
    curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode code = curl_easy_perform(curl.get());
  if (state.too_big) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": response over ", max_body, " bytes"));
  }
  if (code != CURLE_OK) return CurlError(what, code, error);
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

absl::StatusOr<HttpResponse> RegistryClient::Request(
    const std::string& method, const std::string& url,
    const std::map<std::string, std::string>& headers, absl::string_view body, int64_t max_body) {
  const std::string sent = Authorization();
  NA_ASSIGN_OR_RETURN(HttpResponse r, Perform(method, url, headers, body, max_body, sent));
  if (r.status != 401) return r;
  auto challenge = r.headers.find("www-authenticate");
  if (challenge == r.headers.end()) return r;
  NA_RETURN_IF_ERROR(Authenticate(challenge->second, sent));
  return Perform(method, url, headers, body, max_body, Authorization());
}

std::string RegistryClient::Authorization() const {
  absl::MutexLock lock(&auth_mu_);
  return authorization_;
}

absl::Status RegistryClient::HttpError(const std::string& what, const HttpResponse& r) const {
  return StatusForHttp(what, r, registry_,
                       options_.credentials ? options_.credentials->username : "");
}

absl::Status RegistryClient::Authenticate(const std::string& header, const std::string& failed) {
  const std::string what = absl::StrCat("registry ", registry_, ": authenticate");
  absl::StatusOr<AuthChallenge> challenge = ParseAuthChallenge(header);
  if (!challenge.ok()) return Annotate(challenge.status(), what);
  const std::optional<Credentials>& credentials = options_.credentials;
  const std::string login_hint =
      absl::StrCat(" (run: nodectl login ", registry_, " -u USER --password-stdin)");
  std::string authorization;
  if (challenge->scheme == "basic") {
    if (!credentials) {
      return absl::UnauthenticatedError(
          absl::StrCat("registry ", registry_, " needs authentication", login_hint));
    }
    authorization = absl::StrCat("Basic ", EncodeAuth(*credentials));
    if (authorization == failed) {
      return absl::UnauthenticatedError(absl::StrCat("registry ", registry_,
                                                     " rejected the credentials for user \"",
                                                     credentials->username, "\"", login_hint));
    }
  } else if (challenge->scheme == "bearer") {
    const std::string& realm = challenge->params["realm"];
    if (!absl::StartsWith(realm, "https://") && !absl::StartsWith(realm, "http://")) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": bearer challenge without an http(s) realm: ", header));
    }
    // GET realm?service=...&scope=..., with the credentials (if any) as Basic auth.
    std::string token_url = realm;
    char separator = absl::StrContains(realm, "?") ? '&' : '?';
    for (const char* key : {"service", "scope"}) {
      auto it = challenge->params.find(key);
      if (it == challenge->params.end() || it->second.empty()) continue;
      char* escaped =
          curl_easy_escape(nullptr, it->second.c_str(), static_cast<int>(it->second.size()));
      absl::StrAppend(&token_url, std::string(1, separator), key, "=", escaped);
      curl_free(escaped);
      separator = '&';
    }
    std::string basic = credentials ? absl::StrCat("Basic ", EncodeAuth(*credentials)) : "";
    NA_ASSIGN_OR_RETURN(HttpResponse r, Perform("GET", token_url, {}, "", 1 << 20, basic));
    if (r.status == 401 || r.status == 403) {
      return absl::UnauthenticatedError(absl::StrCat(
          "registry ", registry_, ": the token server ", realm,
          credentials
              ? absl::StrCat(" rejected the credentials for user \"", credentials->username, "\"")
              : " refused an anonymous token",
          " (HTTP ", r.status, ")", login_hint));
    }
    if (r.status != 200)
      return StatusForHttp(absl::StrCat(what, ": GET ", realm), r, registry_,
                           credentials ? credentials->username : "");
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    std::string token;
    for (const char* key : {"token", "access_token"}) {
      if (j.is_object() && j.contains(key) && j[key].is_string()) {
        token = j[key].get<std::string>();
        if (!token.empty()) break;
      }
    }
    if (token.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": the token server ", realm, " sent no token"));
    }
    authorization = absl::StrCat("Bearer ", token);
    if (authorization == failed) {
      return absl::UnauthenticatedError(absl::StrCat("registry ", registry_,
                                                     " refused the token its server issued",
                                                     credentials ? "" : login_hint));
    }
  } else {
    return absl::UnimplementedError(
        absl::StrCat(what, ": unsupported authentication scheme \"", challenge->scheme, "\""));
  }
  absl::MutexLock lock(&auth_mu_);
  authorization_ = std::move(authorization);
  return absl::OkStatus();
}

absl::Status RegistryClient::CheckAccess() {
  NA_ASSIGN_OR_RETURN(HttpResponse r, Request("GET", "/v2/", {}, ""));
  if (r.status != 200) return HttpError(absl::StrCat("GET ", Url("/v2/")), r);
  return absl::OkStatus();
}

absl::StatusOr<RegistryClient::Manifest> RegistryClient::GetManifest(const std::string& repository,
                                                                     const std::string& reference) {
  const std::string path = absl::StrCat("/v2/", repository, "/manifests/", reference);
  NA_ASSIGN_OR_RETURN(HttpResponse r, Request("GET", path, {{"Accept", ManifestAccept()}}, ""));
  if (r.status != 200) return HttpError(absl::StrCat("GET manifest ", Url(path)), r);
  Manifest m;
  m.bytes = std::move(r.body);
  m.digest = Sha256Digest(Sha256Hex(m.bytes));
  if (absl::StartsWith(reference, kSha256Prefix) && m.digest != reference) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest ", reference, ": the registry sent content with digest ", m.digest));
  }
  if (auto it = r.headers.find("content-type"); it != r.headers.end()) {
    absl::string_view type = it->second;
    m.media_type = std::string(absl::StripAsciiWhitespace(type.substr(0, type.find(';'))));
  }
  return m;
}

absl::StatusOr<std::string> RegistryClient::GetBlob(const std::string& repository,
                                                    const std::string& digest, int64_t max_bytes) {
  const std::string path = absl::StrCat("/v2/", repository, "/blobs/", digest);
  NA_ASSIGN_OR_RETURN(HttpResponse r, Request("GET", path, {}, "", max_bytes));
  if (r.status != 200) return HttpError(absl::StrCat("GET blob ", Url(path)), r);
  std::string actual = Sha256Digest(Sha256Hex(r.body));
  if (actual != digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("blob ", digest, ": the registry sent content with digest ", actual));
  }
  return std::move(r.body);
}

absl::StatusOr<ByteSource> RegistryClient::OpenBlob(const std::string& repository,
                                                    const std::string& digest,
                                                    std::function<void(int64_t)> on_bytes) {
  const std::string url = Url(absl::StrCat("/v2/", repository, "/blobs/", digest));
  Easy curl(curl_easy_init());
  if (curl == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 5L);
  // A stalled transfer (under 1 KiB/s for 60 s) fails rather than hanging the pull.
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, 60L);
  ApplyTls(curl.get());
  Slist headers;
  if (!Authorization().empty()) {
    // A token may have expired since the manifest was read (some last a minute): a HEAD
    // renews it before the stream starts.
    NA_ASSIGN_OR_RETURN(bool exists, HasBlob(repository, digest));
    if (!exists) return absl::NotFoundError(absl::StrCat("GET ", url, ": blob not found"));
    headers.reset(
        curl_slist_append(nullptr, absl::StrCat("Authorization: ", Authorization()).c_str()));
  }
  auto stream = std::make_shared<BlobStream>();
  NA_RETURN_IF_ERROR(stream->Start(
      std::move(curl), std::move(headers), absl::StrCat("GET ", url),
      [registry = registry_,
       username = options_.credentials ? options_.credentials->username : std::string()](
          const std::string& what, const HttpResponse& r) {
        return StatusForHttp(what, r, registry, username);
      },
      std::move(on_bytes)));
  return ByteSource([stream]() { return stream->Next(); });
}

absl::StatusOr<bool> RegistryClient::HasBlob(const std::string& repository,
                                             const std::string& digest) {
  const std::string path = absl::StrCat("/v2/", repository, "/blobs/", digest);
  NA_ASSIGN_OR_RETURN(HttpResponse r, Request("HEAD", path, {}, ""));
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  return HttpError(absl::StrCat("HEAD ", Url(path)), r);
}

absl::Status RegistryClient::UploadBlob(const std::string& repository, const std::string& digest,
                                        const std::string& path,
                                        std::function<void(int64_t)> on_bytes) {
  const std::string what = absl::StrCat("upload blob ", digest);
  NA_ASSIGN_OR_RETURN(HttpResponse start,
                      Request("POST", absl::StrCat("/v2/", repository, "/blobs/uploads/"),
                              {{"Content-Length", "0"}}, ""));
  if (start.status != 202) return HttpError(absl::StrCat(what, ": start upload"), start);
  std::string location = start.headers["location"];
  if (location.empty()) return absl::InternalError(absl::StrCat(what, ": no upload location"));
  NA_ASSIGN_OR_RETURN(ByteSource source,
                      OpenFileSource(path, static_cast<size_t>(options_.chunk_bytes)));
  int64_t offset = 0;
  while (true) {
    NA_ASSIGN_OR_RETURN(absl::string_view chunk, source());
    if (chunk.empty()) break;
    std::string range = absl::StrCat(offset, "-", offset + static_cast<int64_t>(chunk.size()) - 1);
    NA_ASSIGN_OR_RETURN(HttpResponse r, Request("PATCH", location,
                                                {{"Content-Type", "application/octet-stream"},
                                                 {"Content-Range", range},
                                                 {"Content-Length", absl::StrCat(chunk.size())}},
                                                chunk));
    if (r.status != 202) return HttpError(absl::StrCat(what, ": chunk ", range), r);
    offset += static_cast<int64_t>(chunk.size());
    if (on_bytes) on_bytes(offset);
    if (!r.headers["location"].empty()) location = r.headers["location"];
  }
  const std::string finish =
      absl::StrCat(location, absl::StrContains(location, "?") ? "&" : "?", "digest=", digest);
  NA_ASSIGN_OR_RETURN(HttpResponse done, Request("PUT", finish, {{"Content-Length", "0"}}, ""));
  if (done.status != 201) return HttpError(absl::StrCat(what, ": finish upload"), done);
  return absl::OkStatus();
}

absl::StatusOr<std::string> RegistryClient::PutManifest(const std::string& repository,
                                                        const std::string& reference,
                                                        const std::string& media_type,
                                                        const std::string& bytes) {
  const std::string path = absl::StrCat("/v2/", repository, "/manifests/", reference);
  NA_ASSIGN_OR_RETURN(HttpResponse r, Request("PUT", path, {{"Content-Type", media_type}}, bytes));
  if (r.status != 201 && r.status != 200) return HttpError(absl::StrCat("PUT ", Url(path)), r);
  std::string digest = Sha256Digest(Sha256Hex(bytes));
  if (auto it = r.headers.find("docker-content-digest");
      it != r.headers.end() && it->second != digest) {
    return absl::InternalError(absl::StrCat("PUT ", Url(path), ": the registry stored digest ",
                                            it->second, ", not ", digest));
  }
  return digest;
}

}  // namespace nodeagent::image
