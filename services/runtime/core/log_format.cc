#include "services/runtime/core/log_format.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace nodeagent::runtime {

std::string EncodeLogRecord(int64_t unix_nanos, OutputStream stream, absl::string_view data) {
  return absl::StrCat(unix_nanos, " ", stream == OutputStream::kStdout ? "O" : "E", " ",
                      data.size(), "\n", data);
}

absl::StatusOr<DecodedLogRecords> DecodeLogRecords(absl::string_view buffer) {
  DecodedLogRecords out;
  size_t pos = 0;
  while (pos < buffer.size()) {
    size_t newline = buffer.find('\n', pos);
    if (newline == absl::string_view::npos) {
      if (buffer.size() - pos > 64) {
        return absl::DataLossError(absl::StrCat("log record header too long at byte ", pos));
      }
      break;  // Header not complete yet.
    }
    absl::string_view header = buffer.substr(pos, newline - pos);
    std::vector<absl::string_view> fields = absl::StrSplit(header, ' ');
    LogRecord record;
    uint64_t length = 0;
    if (fields.size() != 3 || !absl::SimpleAtoi(fields[0], &record.unix_nanos) ||
        (fields[1] != "O" && fields[1] != "E") || !absl::SimpleAtoi(fields[2], &length)) {
      return absl::DataLossError(
          absl::StrCat("malformed log record header at byte ", pos, ": \"", header, "\""));
    }
    record.stream = fields[1] == "O" ? OutputStream::kStdout : OutputStream::kStderr;
    size_t data_start = newline + 1;
    if (buffer.size() - data_start < length) break;  // Data not complete yet.
    record.data = std::string(buffer.substr(data_start, length));
    out.records.push_back(std::move(record));
    pos = data_start + length;
    out.consumed = pos;
  }
  return out;
}

}  // namespace nodeagent::runtime
