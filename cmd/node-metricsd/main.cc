// node-metricsd: the metrics service. Follows the runtime's container events, reads their
// cgroups at scrape time, and serves them as Prometheus /metrics (cAdvisor's names) over HTTP
// and as the MetricsService gRPC API on its Unix socket.

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "absl/strings/str_join.h"
#include "services/common/grpc/service_host.h"
#include "services/common/log.h"
#include "services/metrics/core/container_registry.h"
#include "services/metrics/core/prometheus_collector.h"
#include "services/metrics/core/stats_reader.h"
#include "services/metrics/grpc/metrics_service.h"
#include "services/metrics/grpc/runtime_watcher.h"
#include "services/metrics/http/metrics_http_server.h"
#include "services/metrics/linux/cgroup_readers.h"
#include "services/metrics/linux/host_reader.h"

int main(int argc, char** argv) {
  nodeagent::BlockTerminationSignals();
  CLI::App app{"node-metricsd: nodeagent metrics service"};
  std::string run_dir = "/run/nodeagent";
  std::string listen;
  std::string metrics_address = "127.0.0.1:9323";
  std::string runtime_socket;
  int gzip_level = 1;
  app.add_option("--run-dir", run_dir, "Directory of the services' sockets")->capture_default_str();
  app.add_option("--listen", listen, "Also listen on this TCP address (e.g. 127.0.0.1:7703)");
  app.add_option("--metrics-address", metrics_address,
                 "HTTP address of Prometheus /metrics (port 0: any free port); empty disables it")
      ->capture_default_str();
  app.add_option("--runtime-socket", runtime_socket,
                 "Socket of the runtime service (default: <run-dir>/runtime.sock)");
  app.add_option("--metrics-gzip-level", gzip_level,
                 "ISA-L igzip level (0..3) of /metrics when the scraper accepts gzip; -1: never")
      ->check(CLI::Range(-1, 3))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  nodeagent::SetLogPrefix("node-metricsd");
  if (runtime_socket.empty()) runtime_socket = nodeagent::ServiceSocketPath(run_dir, "runtime");

  auto cgroups = nodeagent::metrics::DetectCgroupReader();
  if (!cgroups.ok()) {
    nodeagent::LogError("%s", cgroups.status().ToString());
    return 1;
  }
  auto fds = nodeagent::metrics::ReserveCachedFileDescriptors();
  if (!fds.ok()) {
    nodeagent::LogError("%s", fds.status().ToString());
    return 1;
  }
  nodeagent::LogInfo("reading cgroup %s (keeping up to %d cgroup files open)",
                     (*cgroups)->Version(), *fds);
  std::unique_ptr<nodeagent::metrics::HostReader> host = nodeagent::metrics::NewHostReader();
  nodeagent::metrics::ContainerRegistry containers(cgroups->get(), host.get());
  nodeagent::metrics::StatsReader stats(&containers, host.get());
  nodeagent::metrics::RuntimeWatcher watcher(nodeagent::DialUnixSocket(runtime_socket),
                                             &containers);

  std::unique_ptr<nodeagent::metrics::MetricsHttpServer> exporter;
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("nodeagent_build_info")
      .Help("nodeagent version; always 1")
      .Register(*registry)
      .Add({{"version", "0.1.0"}})
      .Set(1);
  auto collector = std::make_shared<nodeagent::metrics::CadvisorCollector>(&stats);
  if (!metrics_address.empty()) {
    auto started = nodeagent::metrics::MetricsHttpServer::Start(
        {.address = metrics_address, .threads = 2, .gzip_level = gzip_level},
        {registry, collector});
    if (!started.ok()) {
      nodeagent::LogError("%s", started.status().ToString());
      return 1;
    }
    exporter = *std::move(started);
    nodeagent::LogInfo("serving Prometheus /metrics on %s (ports %s)", metrics_address,
                       absl::StrJoin(exporter->ports(), ","));
  }
  nodeagent::metrics::MetricsServiceImpl service(&stats);
  auto server = nodeagent::ServiceHost::Start({"metrics", run_dir, listen}, {&service});
  if (!server.ok()) {
    nodeagent::LogError("%s", server.status().ToString());
    return 1;
  }
  (*server)->RunUntilSignalled();
  // The exporter goes first: no scrape may run while the readers below are destroyed.
  exporter.reset();
  return 0;
}
