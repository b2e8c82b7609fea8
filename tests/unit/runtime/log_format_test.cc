#include "services/runtime/core/log_format.h"

#include <gtest/gtest.h>

namespace nodeagent::runtime {
namespace {

TEST(LogFormat, RoundTripsRecordsOfBothStreams) {
  std::string log = EncodeLogRecord(1, OutputStream::kStdout, "hello\n") +
                    EncodeLogRecord(2, OutputStream::kStderr, "") +
                    EncodeLogRecord(3, OutputStream::kStdout, std::string("bin\0ary\n", 8));
  auto decoded = DecodeLogRecords(log);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->records.size(), 3u);
  EXPECT_EQ(decoded->consumed, log.size());
  EXPECT_EQ(decoded->records[0].unix_nanos, 1);
  EXPECT_EQ(decoded->records[0].data, "hello\n");
  EXPECT_EQ(decoded->records[1].stream, OutputStream::kStderr);
  EXPECT_EQ(decoded->records[1].data, "");
  EXPECT_EQ(decoded->records[2].data, std::string("bin\0ary\n", 8));
}

TEST(LogFormat, LeavesAnIncompleteLastRecordForLater) {
  std::string whole = EncodeLogRecord(5, OutputStream::kStdout, "complete");
  std::string partial = EncodeLogRecord(6, OutputStream::kStdout, "cut short");
  for (size_t cut = 0; cut < partial.size(); ++cut) {
    auto decoded = DecodeLogRecords(whole + partial.substr(0, cut));
    ASSERT_TRUE(decoded.ok()) << "cut at " << cut;
    ASSERT_EQ(decoded->records.size(), 1u) << "cut at " << cut;
    EXPECT_EQ(decoded->consumed, whole.size());
  }
}

TEST(LogFormat, MalformedHeaderIsDataLoss) {
  EXPECT_EQ(DecodeLogRecords("12 X 3\nabc").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeLogRecords("nope O 3\nabc").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeLogRecords(std::string(100, 'x')).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace nodeagent::runtime
