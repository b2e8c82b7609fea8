#pragma once

// Runs a command to completion and captures what it printed: how end-to-end tests drive
// nodectl, buf and friends exactly as a user's shell would.

#include <string>
#include <vector>

namespace nodeagent::testing {

struct CommandResult {
  int exit_code = -1;  // 128+N when killed by signal N.
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) with argv; `input` is written to its stdin.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input = "");

// A fresh directory under `parent` (created if missing) named prefix-XXXXXX.
std::string MakeTempDir(const std::string& parent, const std::string& prefix);

}  // namespace nodeagent::testing
