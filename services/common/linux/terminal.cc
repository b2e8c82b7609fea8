#include "services/common/linux/terminal.h"

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "services/common/linux/errno_status.h"

namespace nodeagent::linux {

static_assert(sizeof(struct termios) <= 64, "RawTerminal::saved_ too small");

absl::StatusOr<RawTerminal> RawTerminal::Enter(int fd) {
  struct termios saved;
  if (::tcgetattr(fd, &saved) != 0) {
    return absl::FailedPreconditionError("the input is not a terminal (drop -t, or use -i alone)");
  }
  struct termios raw = saved;
  ::cfmakeraw(&raw);
  if (::tcsetattr(fd, TCSANOW, &raw) != 0) return LastErrnoStatus("tcsetattr raw");
  return RawTerminal(fd, &saved);
}

RawTerminal::RawTerminal(int fd, const void* saved) : fd_(fd) {
  std::memcpy(saved_, saved, sizeof(struct termios));
}

RawTerminal::RawTerminal(RawTerminal&& other) noexcept : fd_(other.fd_) {
  std::memcpy(saved_, other.saved_, sizeof(saved_));
  other.active_ = false;
}

RawTerminal::~RawTerminal() {
  if (!active_) return;
  struct termios saved;
  std::memcpy(&saved, saved_, sizeof(saved));
  ::tcsetattr(fd_, TCSANOW, &saved);
}

bool IsTerminal(int fd) { return ::isatty(fd) == 1; }

std::optional<std::pair<int, int>> TerminalSize(int fd) {
  struct winsize ws;
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return std::nullopt;
  return std::make_pair(static_cast<int>(ws.ws_row), static_cast<int>(ws.ws_col));
}

}  // namespace nodeagent::linux
