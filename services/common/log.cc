#include "services/common/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nodeagent {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::string* g_prefix = new std::string();  // Leaked on purpose: used until exit.

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = level; }
void SetLogPrefix(absl::string_view prefix) { *g_prefix = std::string(prefix); }

void LogLine(LogLevel level, absl::string_view message) {
  if (level < g_level.load()) return;
  std::string line = absl::StrFormat(
      "%s %s %s: %s\n", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
      LevelName(level), *g_prefix, message);
  // Best effort: a log line that cannot be written has nowhere else to go.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace nodeagent
