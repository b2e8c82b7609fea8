#pragma once

// Helpers and registrations shared by the image command files (image_commands.cc,
// registry_commands.cc). RegisterImageCommands (commands.h) registers them all.

#include <string>

#include "cmd/nodectl/cli_context.h"
#include "cmd/nodectl/commands.h"

namespace nodeagent::nodectl {

// pull, push, save, load.
void RegisterRegistryCommands(CLI::App& app, CliContext& context, int* exit_code);

// Resolves a container name or id prefix to its full id (the image service's snapshot
// key) through the runtime service. Prints the error and returns "" when it fails.
std::string ResolveContainerId(CliContext& ctx, const std::string& container,
                               const std::string& what);

// Prints a message as JSON (for --format json).
void PrintJson(const google::protobuf::Message& message);

}  // namespace nodeagent::nodectl
