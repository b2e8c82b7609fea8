#pragma once

// nodectl blocks the terminating signals in main() before gRPC starts threads; one thread
// receives them and hands them to whatever the running command registered (e.g. `run`
// forwards them to the container), or exits 128+N.

#include <functional>
#include <string>

namespace nodeagent::nodectl {

void BlockAndHandleSignals();
// `handler` gets each signal; set it back to nullptr before the command returns.
void SetSignalHandler(std::function<void(int)> handler);
// "TERM", "SIGTERM" or "15" -> 15; 0 when unknown.
int ParseSignal(const std::string& text);

}  // namespace nodeagent::nodectl
