// node-metricsd: the metrics service. Serves Prometheus /metrics over HTTP (prometheus-cpp)
// and the MetricsService gRPC API; container metrics arrive with issue 6.

#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "services/common/grpc/service_host.h"
#include "services/common/log.h"
#include "services/metrics/grpc/metrics_service.h"

int main(int argc, char** argv) {
  nodeagent::BlockTerminationSignals();
  CLI::App app{"node-metricsd: nodeagent metrics service"};
  std::string run_dir = "/run/nodeagent";
  std::string listen;
  std::string metrics_address = "127.0.0.1:9323";
  app.add_option("--run-dir", run_dir, "Directory of the services' sockets")->capture_default_str();
  app.add_option("--listen", listen, "Also listen on this TCP address (e.g. 127.0.0.1:7703)");
  app.add_option("--metrics-address", metrics_address,
                 "HTTP address of Prometheus /metrics; empty disables it")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  nodeagent::SetLogPrefix("node-metricsd");
  std::unique_ptr<prometheus::Exposer> exposer;
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("nodeagent_build_info")
      .Help("nodeagent version; always 1")
      .Register(*registry)
      .Add({{"version", "0.1.0"}})
      .Set(1);
  if (!metrics_address.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(metrics_address);
    } catch (const std::exception& e) {
      nodeagent::LogError("cannot serve /metrics on %s: %s", metrics_address, e.what());
      return 1;
    }
    exposer->RegisterCollectable(registry);
    nodeagent::LogInfo("serving Prometheus /metrics on http://%s/metrics", metrics_address);
  }
  nodeagent::metrics::MetricsServiceImpl service;
  auto host = nodeagent::ServiceHost::Start({"metrics", run_dir, listen}, {&service});
  if (!host.ok()) {
    nodeagent::LogError("%s", host.status().ToString());
    return 1;
  }
  (*host)->RunUntilSignalled();
  return 0;
}
