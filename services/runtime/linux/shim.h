#pragma once

// node-shim: the per-container monitor (shim_protocol.h is its contract with the runtime).
// One process per container, started by the runtime service, outliving it: it starts the
// container, keeps its output in <bundle>/container.log and records how it ended in
// <bundle>/exit.json, so neither is lost while the runtime service is down.

#include <string>
#include <vector>

namespace nodeagent::runtime {

// Runs the container of the bundle at `bundle` (absolute path) to its end. `start_fd` is the
// start pipe (kShimStartPipeFd). Returns node-shim's exit status: 0 once exit.json is
// written; 1 when the container could not be started (reported on the start pipe) or its end
// could not be recorded; 2 when there was no start pipe to report on.
int RunShim(const std::string& bundle, int start_fd);

// node-shim warm (shim_protocol.h): waits, its child in `cgroup_dirs` already, for the "go" on
// `control_fd` (kShimControlPipeFd), then runs that container as RunShim does. Exits 0 without
// a report when the control pipe closes first, having removed its child and `cgroup_dirs`.
int RunWarmShim(const std::vector<std::string>& cgroup_dirs, int start_fd, int control_fd);

}  // namespace nodeagent::runtime
