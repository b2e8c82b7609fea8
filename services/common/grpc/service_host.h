#pragma once

// Runs one nodeagent service: a gRPC server on a Unix socket (mode 0660) under the run
// directory and optionally on TCP, with grpc.health.v1.Health, server reflection and one log
// line per request. Main threads call Run(), which returns after SIGTERM/SIGINT.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nodeagent {

struct ServiceHostOptions {
  // Short service name: "image", "runtime", "network", "metrics".
  std::string name;
  // Directory holding the socket; the socket is <run_dir>/<name>.sock.
  std::string run_dir = "/run/nodeagent";
  // Optional TCP address ("127.0.0.1:PORT"); empty means no TCP listener.
  std::string listen_address;
};

class ServiceHost {
 public:
  // Binds the socket(s) and starts serving `services` (not owned; they must outlive the host).
  static absl::StatusOr<std::unique_ptr<ServiceHost>> Start(
      const ServiceHostOptions& options, const std::vector<grpc::Service*>& services);
  ~ServiceHost();

  // Blocks until SIGTERM or SIGINT, then shuts the server down (in-flight calls get a short
  // grace period). The caller must have blocked those signals with BlockTerminationSignals()
  // before any thread was started.
  void RunUntilSignalled();
  void Shutdown();

  const std::string& socket_path() const { return socket_path_; }

 private:
  ServiceHost() = default;
  std::unique_ptr<grpc::Server> server_;
  std::string socket_path_;
  std::string name_;
};

// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread; threads started later inherit it.
void BlockTerminationSignals();

// Unix socket path of a service: <run_dir>/<name>.sock.
std::string ServiceSocketPath(const std::string& run_dir, const std::string& name);

// A channel to a service's Unix socket.
std::shared_ptr<grpc::Channel> DialUnixSocket(const std::string& socket_path);

}  // namespace nodeagent
