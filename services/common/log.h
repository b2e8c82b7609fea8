#pragma once

// Minimal leveled logging to stderr (Debian's Abseil has no absl/log). One line per call,
// written with a single write(2) so lines from threads never interleave.

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace nodeagent {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void SetLogLevel(LogLevel level);
void SetLogPrefix(absl::string_view prefix);
void LogLine(LogLevel level, absl::string_view message);

template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kWarning, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kError, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogDebug(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kDebug, absl::StrFormat(format, args...));
}

}  // namespace nodeagent
