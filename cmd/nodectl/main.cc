// nodectl: the command line of nodeagent. Each command group lives in its own file.

#include <grpc/grpc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cmd/nodectl/cli_context.h"
#include "cmd/nodectl/commands.h"
#include "cmd/nodectl/signals.h"

int main(int argc, char** argv) {
  // One reference to gRPC held to the end, which is std::_Exit below: the last channel's
  // destruction then does not shut gRPC down, which waits for its timer thread (~4 ms).
  grpc_init();
  nodeagent::nodectl::BlockAndHandleSignals();
  nodeagent::nodectl::GlobalOptions options;
  if (const char* run_dir = std::getenv("NODEAGENT_RUN_DIR")) options.run_dir = run_dir;

  CLI::App app{"nodectl: drive a nodeagent node (image, runtime, network, metrics services)"};
  app.require_subcommand(1);
  app.add_option("--run-dir", options.run_dir,
                 "Directory of the services' sockets (env NODEAGENT_RUN_DIR)")
      ->capture_default_str();
  app.add_option("--format", options.format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  nodeagent::nodectl::CliContext context(&options);
  int exit_code = 0;
  nodeagent::nodectl::RegisterNodeCommands(app, context, &exit_code);
  nodeagent::nodectl::RegisterImageCommands(app, context, &exit_code);
  nodeagent::nodectl::RegisterContainerCommands(app, context, &exit_code);
  nodeagent::nodectl::RegisterStatsCommands(app, context, &exit_code);
  nodeagent::nodectl::RegisterIntrospectCommands(app, context, &exit_code);
  nodeagent::nodectl::RegisterVolumeCommands(app, context, &exit_code);
  nodeagent::nodectl::RegisterNetworkCommands(app, context, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // Usage errors of `run` use Docker's 125 so scripts can tell them from the container's.
    return rc == 0 ? 0 : (std::string(argc > 1 ? argv[1] : "") == "run" ? 125 : 2);
  }
  // Every command has finished its work (terminal restored, files closed); what is left is
  // gRPC's shutdown, which joins its threads: milliseconds of every command, for nothing.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(exit_code);
}
