// node-imaged: serves nodeagent.v1.ImageService on <run-dir>/image.sock.

#include <CLI/CLI.hpp>
#include <string>

#include "services/common/grpc/service_host.h"
#include "services/common/log.h"
#include "services/image/core/busybox_image.h"
#include "services/image/core/image_store.h"
#include "services/image/grpc/image_service.h"

namespace {

bool ParseLogLevel(const std::string& name, nodeagent::LogLevel* level) {
  if (name == "debug") {
    *level = nodeagent::LogLevel::kDebug;
  } else if (name == "info") {
    *level = nodeagent::LogLevel::kInfo;
  } else if (name == "warning") {
    *level = nodeagent::LogLevel::kWarning;
  } else if (name == "error") {
    *level = nodeagent::LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread inherits the mask and only
  // RunUntilSignalled sees SIGTERM/SIGINT.
  nodeagent::BlockTerminationSignals();
  nodeagent::SetLogPrefix("node-imaged");

  CLI::App app{"nodeagent image service: image store, layers and container snapshots"};
  std::string root(nodeagent::image::kDefaultImageRoot);
  std::string run_dir = "/run/nodeagent";
  std::string listen;
  std::string busybox(nodeagent::image::kDefaultBusyboxPath);
  std::string log_level = "info";
  int64_t max_layer_bytes = nodeagent::image::ImageStoreOptions().max_layer_bytes;
  app.add_option("--root", root, "State directory")->capture_default_str();
  app.add_option("--run-dir", run_dir, "Directory of the service socket (image.sock)")
      ->capture_default_str();
  app.add_option("--listen", listen, "Also listen on this TCP address (e.g. 127.0.0.1:7001)");
  app.add_option("--busybox", busybox,
                 "busybox-static binary the built-in busybox image is made from")
      ->capture_default_str();
  app.add_option("--max-layer-bytes", max_layer_bytes,
                 "Largest uncompressed layer accepted (hostile archives); 0 for no limit")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warning or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  CLI11_PARSE(app, argc, argv);

  nodeagent::LogLevel level = nodeagent::LogLevel::kInfo;
  ParseLogLevel(log_level, &level);
  nodeagent::SetLogLevel(level);

  absl::StatusOr<std::unique_ptr<nodeagent::image::ImageStore>> store =
      nodeagent::image::ImageStore::Open({.root = root, .max_layer_bytes = max_layer_bytes});
  if (!store.ok()) {
    nodeagent::LogError("%s", store.status().ToString());
    return 1;
  }
  if (absl::Status s = nodeagent::image::EnsureBusyboxImage(**store, busybox); !s.ok()) {
    // The service is still useful without the default image (imports work).
    nodeagent::LogError("%s", s.ToString());
  }

  nodeagent::image::ImageServiceImpl service(store->get());
  absl::StatusOr<std::unique_ptr<nodeagent::ServiceHost>> host =
      nodeagent::ServiceHost::Start({"image", run_dir, listen}, {&service});
  if (!host.ok()) {
    nodeagent::LogError("%s", host.status().ToString());
    return 1;
  }
  (*host)->RunUntilSignalled();
  return 0;
}
