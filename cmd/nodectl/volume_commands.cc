// nodectl volume create / ls / rm: named volumes kept by the runtime service.

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cmd/nodectl/commands.h"

namespace nodeagent::nodectl {
namespace {

int CreateVolume(CliContext& ctx, const std::string& name) {
  v1::CreateVolumeRequest request;
  request.set_name(name);
  v1::CreateVolumeResponse response;
  auto context = CliContext::Deadline();
  grpc::Status status = ctx.Runtime()->CreateVolume(context.get(), request, &response);
  if (!status.ok()) {
    PrintError(absl::StrCat("volume create ", name), status, "runtime");
    return kExitFailure;
  }
  std::cout << response.volume().name() << "\n";
  return 0;
}

int ListVolumes(CliContext& ctx) {
  v1::ListVolumesRequest request;
  v1::ListVolumesResponse response;
  auto context = CliContext::Deadline();
  grpc::Status status = ctx.Runtime()->ListVolumes(context.get(), request, &response);
  if (!status.ok()) {
    PrintError("volume ls", status, "runtime");
    return kExitFailure;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::Volume& v : response.volumes()) {
    rows.push_back({v.name(), HumanSize(v.size_bytes()),
                    v.used_by().empty() ? "-" : absl::StrJoin(v.used_by(), ","), v.path()});
  }
  PrintTable({"VOLUME NAME", "SIZE", "USED BY", "PATH"}, rows);
  return 0;
}

int RemoveVolumes(CliContext& ctx, const std::vector<std::string>& names) {
  int rc = 0;
  for (const std::string& name : names) {
    v1::RemoveVolumeRequest request;
    request.set_name(name);
    v1::RemoveVolumeResponse response;
    auto context = CliContext::Deadline(60);
    grpc::Status status = ctx.Runtime()->RemoveVolume(context.get(), request, &response);
    if (!status.ok()) {
      PrintError(absl::StrCat("volume rm ", name), status, "runtime");
      rc = kExitFailure;
      continue;
    }
    std::cout << name << "\n";
  }
  return rc;
}

}  // namespace

void RegisterVolumeCommands(CLI::App& app, CliContext& context, int* exit_code) {
  CLI::App* volume = app.add_subcommand("volume", "Manage named volumes");
  volume->require_subcommand(1);
  auto names = std::make_shared<std::vector<std::string>>();
  auto name = std::make_shared<std::string>();
  CLI::App* create = volume->add_subcommand("create", "Create a volume");
  create->add_option("name", *name, "Volume name")->required();
  create->callback([&context, exit_code, name] { *exit_code = CreateVolume(context, *name); });
  CLI::App* ls = volume->add_subcommand("ls", "List volumes");
  ls->callback([&context, exit_code] { *exit_code = ListVolumes(context); });
  CLI::App* rm = volume->add_subcommand("rm", "Remove volumes (refused while in use)");
  rm->add_option("names", *names, "Volume names")->required();
  rm->callback([&context, exit_code, names] { *exit_code = RemoveVolumes(context, *names); });
}

}  // namespace nodeagent::nodectl
