#include "services/common/grpc/service_host.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/linux/unique_fd.h"
#include "services/common/log.h"

namespace nodeagent {
namespace {

// Logs one line per finished RPC: method, status code, message and duration.
class RequestLogInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit RequestLogInterceptor(grpc::experimental::ServerRpcInfo* info)
      : method_(info->method()), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      double ms = absl::ToDoubleMilliseconds(absl::Now() - start_);
      if (status.ok()) {
        LogInfo("%s OK %.1fms", method_, ms);
      } else {
        LogInfo("%s %s %.1fms: %s", method_, CodeName(status.error_code()), ms,
                status.error_message());
      }
    }
    methods->Proceed();
  }

 private:
  static const char* CodeName(grpc::StatusCode code) {
    switch (code) {
      case grpc::OK:
        return "OK";
      case grpc::CANCELLED:
        return "CANCELLED";
      case grpc::UNKNOWN:
        return "UNKNOWN";
      case grpc::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::NOT_FOUND:
        return "NOT_FOUND";
      case grpc::ALREADY_EXISTS:
        return "ALREADY_EXISTS";
      case grpc::PERMISSION_DENIED:
        return "PERMISSION_DENIED";
      case grpc::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
      case grpc::ABORTED:
        return "ABORTED";
      case grpc::OUT_OF_RANGE:
        return "OUT_OF_RANGE";
      case grpc::UNIMPLEMENTED:
        return "UNIMPLEMENTED";
      case grpc::INTERNAL:
        return "INTERNAL";
      case grpc::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::DATA_LOSS:
        return "DATA_LOSS";
      case grpc::UNAUTHENTICATED:
        return "UNAUTHENTICATED";
      default:
        return "?";
    }
  }

  std::string method_;
  absl::Time start_;
};

class RequestLogInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RequestLogInterceptor(info);
  }
};

// A socket file left by a crashed instance is removed; one that still answers is in use.
absl::Status ClaimSocketPath(const std::string& path) {
  if (!linux::PathExists(path)) return absl::OkStatus();
  linux::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return linux::LastErrnoStatus("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: \"", path, "\""));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("\"", path, "\" is served by a running process; is the service already up?"));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return linux::LastErrnoStatus(absl::StrCat("remove stale socket \"", path, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

std::string ServiceSocketPath(const std::string& run_dir, const std::string& name) {
  return absl::StrCat(run_dir, "/", name, ".sock");
}

std::shared_ptr<grpc::Channel> DialUnixSocket(const std::string& socket_path) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(absl::StrCat("unix:", socket_path),
                                   grpc::InsecureChannelCredentials(), args);
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::StatusOr<std::unique_ptr<ServiceHost>> ServiceHost::Start(
    const ServiceHostOptions& options, const std::vector<grpc::Service*>& services) {
  if (absl::Status s = linux::MakeDirs(options.run_dir, 0755); !s.ok()) return s;
  std::string socket_path = ServiceSocketPath(options.run_dir, options.name);
  if (absl::Status s = ClaimSocketPath(socket_path); !s.ok()) return s;

  grpc::EnableDefaultHealthCheckService(true);
  // gRPC's built-in health service carries no protobuf descriptor; touching ours links it in,
  // so reflection can describe grpc.health.v1.Health too.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", socket_path), grpc::InsecureServerCredentials());
  int tcp_port = 0;
  if (!options.listen_address.empty()) {
    builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(), &tcp_port);
  }
  builder.SetMaxReceiveMessageSize(64 << 20);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<RequestLogInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(factories));

  // The socket must never be reachable with wider permissions than 0660.
  mode_t old_umask = ::umask(0117);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (server == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on \"", socket_path, "\"",
                                               options.listen_address.empty() ? "" : " or ",
                                               options.listen_address));
  }
  if (!options.listen_address.empty() && tcp_port == 0) {
    server->Shutdown();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address));
  }
  if (::chmod(socket_path.c_str(), 0660) != 0) {
    server->Shutdown();
    return linux::LastErrnoStatus(absl::StrCat("chmod \"", socket_path, "\""));
  }
  auto host = std::unique_ptr<ServiceHost>(new ServiceHost());
  host->server_ = std::move(server);
  host->socket_path_ = socket_path;
  host->name_ = options.name;
  LogInfo("serving on unix:%s%s", socket_path,
          options.listen_address.empty() ? std::string()
                                         : absl::StrCat(" and ", options.listen_address));
  return host;
}

ServiceHost::~ServiceHost() { Shutdown(); }

void ServiceHost::RunUntilSignalled() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  LogInfo("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  Shutdown();
}

void ServiceHost::Shutdown() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  server_.reset();
  ::unlink(socket_path_.c_str());
  LogInfo("stopped");
}

}  // namespace nodeagent
