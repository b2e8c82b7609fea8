#include "services/runtime/linux/attach_session.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/runtime/linux/attach_socket.h"

namespace nodeagent::runtime {

absl::StatusOr<std::unique_ptr<AttachSession>> AttachSession::Connect(const std::string& dir) {
  auto fd = ConnectAttachSocket(dir);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<AttachSession>(new AttachSession(*std::move(fd)));
}

absl::Status AttachSession::Send(uint8_t type, absl::string_view payload) {
  return linux::WriteAll(fd_.get(), EncodeAttachFrame(type, payload));
}

absl::Status AttachSession::Resize(uint16_t rows, uint16_t cols) {
  return linux::WriteAll(fd_.get(), EncodeResizeFrame(rows, cols));
}

absl::StatusOr<std::optional<AttachFrame>> AttachSession::Receive() {
  char buf[65536];
  while (true) {
    auto frame = reader_.Next();
    if (!frame.ok() || frame->has_value()) return frame;
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return linux::LastErrnoStatus("read attach socket");
    if (n == 0) return std::optional<AttachFrame>();
    reader_.Feed(absl::string_view(buf, static_cast<size_t>(n)));
  }
}

void AttachSession::Shutdown() { ::shutdown(fd_.get(), SHUT_RDWR); }

}  // namespace nodeagent::runtime
