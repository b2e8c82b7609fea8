// nodectl ns / mounts: what a container is made of, as lsns and findmnt show it (the seed
// exercises 1 and 4).

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cmd/nodectl/commands.h"

namespace nodeagent::nodectl {
namespace {

int Namespaces(CliContext& ctx, const std::string& target) {
  v1::ListNamespacesRequest request;
  int pid = 0;
  if (absl::SimpleAtoi(target, &pid)) {
    request.set_pid(pid);
  } else {
    request.set_container(target);
  }
  v1::ListNamespacesResponse response;
  auto context = CliContext::Deadline();
  grpc::Status status = ctx.Runtime()->ListNamespaces(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("ns ", target), status, "runtime");
    return kExitFailure;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Namespace& ns : response.namespaces()) {
    rows.push_back({ns.type(), std::to_string(ns.inode()),
                    absl::StrCat(ns.type(), ":[", ns.inode(), "]"),
                    ns.shared_with_host() ? "host" : "own"});
  }
  std::cout << "namespaces of pid " << response.pid() << "\n";
  PrintTable({"TYPE", "INODE", "LINK", "SHARED"}, rows);
  return 0;
}

int Mounts(CliContext& ctx, const std::string& container) {
  v1::ListMountsRequest request;
  request.set_container(container);
  v1::ListMountsResponse response;
  auto context = CliContext::Deadline();
  grpc::Status status = ctx.Runtime()->ListMounts(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("mounts ", container), status, "runtime");
    return kExitFailure;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::MountInfo& m : response.mounts()) {
    rows.push_back({m.target(), m.source(), m.fstype(), m.propagation(), m.options()});
  }
  PrintTable({"TARGET", "SOURCE", "FSTYPE", "PROPAGATION", "OPTIONS"}, rows);
  return 0;
}

}  // namespace

void RegisterIntrospectCommands(CLI::App& app, CliContext& context, int* exit_code) {
  auto target = std::make_shared<std::string>();
  CLI::App* ns = app.add_subcommand("ns", "List the namespaces of a container or PID (lsns)");
  ns->add_option("target", *target, "Container or host PID")->required();
  ns->callback([&context, exit_code, target] { *exit_code = Namespaces(context, *target); });

  CLI::App* mounts =
      app.add_subcommand("mounts", "List a container's mounts with propagation (findmnt)");
  mounts->add_option("container", *target, "Container")->required();
  mounts->callback([&context, exit_code, target] { *exit_code = Mounts(context, *target); });
}

}  // namespace nodeagent::nodectl
