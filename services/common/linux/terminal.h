#pragma once

// The client side of an interactive container: the local terminal in raw mode (restored on
// destruction) and its size.

#include <optional>
#include <utility>

#include "absl/status/statusor.h"

namespace nodeagent::linux {

class RawTerminal {
 public:
  // Puts `fd` (a terminal) in raw mode; NOT a terminal -> FAILED_PRECONDITION.
  static absl::StatusOr<RawTerminal> Enter(int fd);
  RawTerminal(RawTerminal&& other) noexcept;
  RawTerminal& operator=(RawTerminal&&) = delete;
  ~RawTerminal();

 private:
  RawTerminal(int fd, const void* saved);
  int fd_;
  alignas(8) char saved_[64];  // struct termios, restored on exit.
  bool active_ = true;
};

bool IsTerminal(int fd);
// Rows and columns of the terminal at `fd`, nullopt if it is none.
std::optional<std::pair<int, int>> TerminalSize(int fd);

}  // namespace nodeagent::linux
