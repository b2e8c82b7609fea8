#pragma once

// What every nodectl command shares: where the services are, stubs with deadlines, and how
// errors and tables are printed.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nodeagent/v1/image.grpc.pb.h"
#include "nodeagent/v1/metrics.grpc.pb.h"
#include "nodeagent/v1/network.grpc.pb.h"
#include "nodeagent/v1/runtime.grpc.pb.h"

namespace nodeagent::nodectl {

// Exit codes scripts can trust (Docker's where Docker has one).
inline constexpr int kExitFailure = 1;
inline constexpr int kExitRunError = 125;  // `run` failed before the container ran.

struct GlobalOptions {
  std::string run_dir = "/run/nodeagent";
  std::string format = "table";  // "table" or "json".
};

class CliContext {
 public:
  explicit CliContext(const GlobalOptions* options) : options_(options) {}

  const GlobalOptions& options() const { return *options_; }
  std::string SocketPath(const std::string& service) const;

  std::unique_ptr<v1::ImageService::StubInterface> Images() const;
  std::unique_ptr<v1::RuntimeService::StubInterface> Runtime() const;
  std::unique_ptr<v1::NetworkService::StubInterface> Network() const;
  std::unique_ptr<v1::MetricsService::StubInterface> Metrics() const;

  // A client context with a deadline `seconds` from now.
  static std::unique_ptr<grpc::ClientContext> Deadline(int seconds = 30);

 private:
  std::shared_ptr<grpc::Channel> Channel(const std::string& service) const;
  const GlobalOptions* options_;
};

// "nodectl: <what>: <message>" on stderr; turns an unreachable service into a hint.
void PrintError(const std::string& what, const grpc::Status& status, const std::string& service);
void PrintError(const std::string& message);

// The per-name commands (rm, kill, stop, wait, pause, network rm ...), Docker's way: `call` is
// made for each of `names` in turn; on success what it put in `out` is printed (the name when it
// left `out` alone), on failure "<verb> <name>: <error>", and the next name is tried. Returns 0,
// or kExitFailure when any failed.
int ForEachName(const std::vector<std::string>& names, const std::string& verb,
                const std::string& service,
                const std::function<grpc::Status(const std::string& name, std::string* out)>& call);

// Left-aligned columns separated by three spaces, like docker's tables.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

std::string HumanSize(int64_t bytes);
// "3 seconds ago", "2 hours ago".
std::string HumanAgo(int64_t unix_nanos);
std::string HumanDuration(int64_t nanos);
// Short form of a "sha256:..." or plain hex id.
std::string ShortId(const std::string& id);

}  // namespace nodeagent::nodectl
