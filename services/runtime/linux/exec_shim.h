#pragma once

// `node-shim exec`: runs one more process in a running container (shim_protocol.h, "exec").

#include <string>

namespace nodeagent::runtime {

// Runs <bundle>/exec-<exec_id>/process.json in the running container of `bundle` to its end.
// `start_fd` is the start pipe. Exit status as RunShim's.
int RunExecShim(const std::string& bundle, const std::string& exec_id, int start_fd);

}  // namespace nodeagent::runtime
