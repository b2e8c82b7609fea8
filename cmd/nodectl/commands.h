#pragma once

// One registration function per command group; each command stores its exit code in
// `*exit_code` when it runs.

#include <CLI/CLI.hpp>

#include "cmd/nodectl/cli_context.h"

namespace nodeagent::nodectl {

void RegisterNodeCommands(CLI::App& app, CliContext& context, int* exit_code);
void RegisterImageCommands(CLI::App& app, CliContext& context, int* exit_code);
void RegisterContainerCommands(CLI::App& app, CliContext& context, int* exit_code);
void RegisterStatsCommands(CLI::App& app, CliContext& context, int* exit_code);
void RegisterIntrospectCommands(CLI::App& app, CliContext& context, int* exit_code);
void RegisterVolumeCommands(CLI::App& app, CliContext& context, int* exit_code);
void RegisterNetworkCommands(CLI::App& app, CliContext& context, int* exit_code);

}  // namespace nodeagent::nodectl
