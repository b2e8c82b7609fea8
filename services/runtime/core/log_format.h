#pragma once

// Records of a container's stored output (<bundle>/container.log). node-shim appends them;
// the runtime reads and follows them. One record:
//   "<unix nanos> <O|E> <length>\n" followed by <length> bytes of output.
// Each record is written with one write(2) on an O_APPEND fd, so a reader sees whole records
// except possibly an incomplete last one, which it leaves for the next read.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

enum class OutputStream { kStdout, kStderr };

struct LogRecord {
  int64_t unix_nanos = 0;
  OutputStream stream = OutputStream::kStdout;
  std::string data;
};

std::string EncodeLogRecord(int64_t unix_nanos, OutputStream stream, absl::string_view data);

struct DecodedLogRecords {
  std::vector<LogRecord> records;
  // Bytes of the input consumed by whole records; the rest is an incomplete record.
  size_t consumed = 0;
};

// Decodes the whole records at the start of `buffer`. A malformed header is DATA_LOSS.
absl::StatusOr<DecodedLogRecords> DecodeLogRecords(absl::string_view buffer);

}  // namespace nodeagent::runtime
