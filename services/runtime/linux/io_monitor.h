#pragma once

// node-shim's event loop while a process runs (the container's first process, or an exec):
// stores its output (container.log), serves it live on the attach socket together with stdin
// and window-size changes (shim_protocol.h: attach protocol), forwards signals to it and
// waits for its end. Single-threaded, poll(2) based; the process is never blocked by a slow
// attacher.

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "services/common/linux/unique_fd.h"
#include "services/runtime/core/log_format.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

struct MonitoredIo {
  int pidfd = -1;               // Not owned: readable once the process has exited.
  linux::UniqueFd stdout_read;  // Pipes (no tty).
  linux::UniqueFd stderr_read;
  linux::UniqueFd tty_master;   // With a tty: output, input and window size.
  linux::UniqueFd stdin_write;  // Pipe to stdin (stdin_open without a tty).
  int log_fd = -1;              // container.log (log_format.h records), or -1 for none.
  int listen_fd = -1;           // The attach socket, or -1.
  int signal_fd = -1;           // signalfd of the signals forwarded to the process, or -1.
};

class IoMonitor {
 public:
  explicit IoMonitor(MonitoredIo io);
  ~IoMonitor();
  IoMonitor(const IoMonitor&) = delete;
  IoMonitor& operator=(const IoMonitor&) = delete;

  // Runs until the process has exited and its output is drained (pipes at EOF; a tty read
  // until empty). Returns its end; oom_killed is left to the caller.
  ExitRecord Run();

  // When nobody has attached yet, waits up to `timeout_ms` for a first attacher (who then
  // gets the replayed output and the exit), so a client that connects just after a quick
  // process ends still sees everything. Returns at once if someone attached before.
  void AwaitFirstAttacher(int timeout_ms);

  // Sends the exit frame to every attacher, flushes what they have pending (for at most two
  // seconds) and closes them and the attach socket.
  void SendExit(const ExitRecord& record);

 private:
  struct Client;

  void Accept();
  void ReadClient(Client& client);
  void WriteClient(Client& client);
  void HandleFrame(const AttachFrame& frame);
  void Output(linux::UniqueFd& fd, OutputStream which);
  void Publish(uint8_t type, const char* data, size_t n);
  void FlushStdin();
  void Reap();
  void Forward();
  void DropDeadClients();

  MonitoredIo io_;
  std::vector<std::unique_ptr<Client>> clients_;
  bool ever_attached_ = false;
  std::deque<std::string> replay_;  // Frames produced before the first attacher.
  size_t replay_bytes_ = 0;
  std::string stdin_pending_;
  bool stdin_close_requested_ = false;
  bool exited_ = false;
  bool log_failed_ = false;
  ExitRecord record_;
  std::unique_ptr<char[]> buffer_;
};

}  // namespace nodeagent::runtime
