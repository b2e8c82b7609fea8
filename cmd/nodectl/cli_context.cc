#include "cmd/nodectl/cli_context.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nodeagent::nodectl {

std::string CliContext::SocketPath(const std::string& service) const {
  return absl::StrCat(options_->run_dir, "/", service, ".sock");
}

std::shared_ptr<grpc::Channel> CliContext::Channel(const std::string& service) const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(absl::StrCat("unix:", SocketPath(service)),
                                   grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<v1::ImageService::StubInterface> CliContext::Images() const {
  return v1::ImageService::NewStub(Channel("image"));
}
std::unique_ptr<v1::RuntimeService::StubInterface> CliContext::Runtime() const {
  return v1::RuntimeService::NewStub(Channel("runtime"));
}
std::unique_ptr<v1::NetworkService::StubInterface> CliContext::Network() const {
  return v1::NetworkService::NewStub(Channel("network"));
}
std::unique_ptr<v1::MetricsService::StubInterface> CliContext::Metrics() const {
  return v1::MetricsService::NewStub(Channel("metrics"));
}

std::unique_ptr<grpc::ClientContext> CliContext::Deadline(int seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

void PrintError(const std::string& message) { std::cerr << "nodectl: " << message << std::endl; }

void PrintError(const std::string& what, const grpc::Status& status, const std::string& service) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    PrintError(absl::StrCat(
        what, ": the ", service,
        " service is not reachable (is the node up? try `nodectl up`): ", status.error_message()));
    return;
  }
  PrintError(absl::StrCat(what, ": ", status.error_message()));
}

int ForEachName(
    const std::vector<std::string>& names, const std::string& verb, const std::string& service,
    const std::function<grpc::Status(const std::string& name, std::string* out)>& call) {
  int rc = 0;
  for (const std::string& name : names) {
    std::string out = name;
    grpc::Status status = call(name, &out);
    if (!status.ok()) {
      PrintError(absl::StrCat(verb, " ", name), status, service);
      rc = kExitFailure;
      continue;
    }
    if (!out.empty()) std::cout << out << "\n";
  }
  return rc;
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&line, row[i]);
      } else {
        absl::StrAppend(&line, row[i], std::string(widths[i] - row[i].size() + 3, ' '));
      }
    }
    std::cout << line << "\n";
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
  std::cout.flush();
}

std::string HumanSize(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, "B");
  return absl::StrFormat("%.3g%s", value, units[unit]);
}

std::string HumanDuration(int64_t nanos) {
  int64_t seconds = nanos / 1000000000;
  if (seconds < 1) return "Less than a second";
  if (seconds < 60) return absl::StrCat(seconds, seconds == 1 ? " second" : " seconds");
  int64_t minutes = seconds / 60;
  if (minutes < 60) return absl::StrCat(minutes, minutes == 1 ? " minute" : " minutes");
  int64_t hours = minutes / 60;
  if (hours < 48) return absl::StrCat(hours, hours == 1 ? " hour" : " hours");
  return absl::StrCat(hours / 24, " days");
}

std::string HumanAgo(int64_t unix_nanos) {
  if (unix_nanos <= 0) return "";
  return absl::StrCat(HumanDuration(absl::ToUnixNanos(absl::Now()) - unix_nanos), " ago");
}

std::string ShortId(const std::string& id) {
  std::string hex = absl::StartsWith(id, "sha256:") ? id.substr(7) : id;
  return hex.substr(0, 12);
}

}  // namespace nodeagent::nodectl
