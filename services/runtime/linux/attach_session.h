#pragma once

// The runtime's end of a shim's attach socket (protocol in shim_protocol.h): frames out,
// frames in, and a shutdown that wakes a blocked reader.

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {

class AttachSession {
 public:
  // Connects to <dir>/attach.sock (a container's bundle or an exec's directory).
  static absl::StatusOr<std::unique_ptr<AttachSession>> Connect(const std::string& dir);

  // Sends one frame (stdin, resize, close-stdin). Safe to call from one thread while another
  // receives.
  absl::Status Send(uint8_t type, absl::string_view payload);
  absl::Status Resize(uint16_t rows, uint16_t cols);
  // The next frame from the shim; nullopt once the shim closed the connection.
  absl::StatusOr<std::optional<AttachFrame>> Receive();
  // Wakes a Receive() blocked in another thread (it then returns nullopt).
  void Shutdown();

 private:
  explicit AttachSession(linux::UniqueFd fd) : fd_(std::move(fd)) {}
  linux::UniqueFd fd_;
  AttachFrameReader reader_;
};

}  // namespace nodeagent::runtime
