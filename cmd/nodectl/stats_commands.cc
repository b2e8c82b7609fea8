// nodectl stats: live CPU, memory, network, block I/O and pids of running containers, like
// `docker stats`, from the metrics service's StreamStats.

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cmd/nodectl/commands.h"

namespace nodeagent::nodectl {
namespace {

struct StatsOptions {
  bool no_stream = false;
  bool no_trunc = false;
  int interval_ms = 1000;
  std::vector<std::string> containers;
};

// Docker shows memory in binary units ("12.5MiB / 256MiB").
std::string BinarySize(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, "B");
  return absl::StrFormat("%.4g%s", value, units[unit]);
}

struct Row {
  v1::ContainerStats stats;
  double cpu_percent = 0;
  double memory_percent = 0;
  uint64_t memory_limit = 0;
};

// CPU % is the container's CPU time over wall time between two samples; 100% is one core.
std::vector<Row> MakeRows(const v1::StreamStatsResponse& now,
                          const std::map<std::string, v1::ContainerStats>& before) {
  std::vector<Row> rows;
  for (const v1::ContainerStats& s : now.stats()) {
    Row row;
    row.stats = s;
    auto it = before.find(s.id());
    if (it != before.end() && s.timestamp_unix_nanos() > it->second.timestamp_unix_nanos() &&
        s.cpu_usage_nanos() >= it->second.cpu_usage_nanos()) {
      row.cpu_percent =
          100.0 * static_cast<double>(s.cpu_usage_nanos() - it->second.cpu_usage_nanos()) /
          static_cast<double>(s.timestamp_unix_nanos() - it->second.timestamp_unix_nanos());
    }
    row.memory_limit =
        s.memory_limit_bytes() > 0 ? s.memory_limit_bytes() : now.machine_memory_bytes();
    if (row.memory_limit > 0) {
      row.memory_percent = 100.0 * static_cast<double>(s.memory_working_set_bytes()) /
                           static_cast<double>(row.memory_limit);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void Print(const CliContext& ctx, const StatsOptions& options, const std::vector<Row>& rows,
           bool clear) {
  if (ctx.options().format == "json") {
    google::protobuf::util::JsonPrintOptions json_options;
    json_options.preserve_proto_field_names = true;
    json_options.always_print_primitive_fields = true;
    for (const Row& r : rows) {
      std::string stats;
      (void)google::protobuf::util::MessageToJsonString(r.stats, &stats, json_options);
      std::cout << absl::StrFormat(
          "{\"cpu_percent\":%.2f,\"memory_percent\":%.2f,\"memory_limit_bytes\":%d,\"stats\":%s}\n",
          r.cpu_percent, r.memory_percent, r.memory_limit, stats);
    }
    std::cout.flush();
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const Row& r : rows) {
    const v1::ContainerStats& s = r.stats;
    table.push_back({
        options.no_trunc ? s.id() : s.id().substr(0, 12),
        s.name(),
        absl::StrFormat("%.2f%%", r.cpu_percent),
        absl::StrCat(BinarySize(s.memory_working_set_bytes()), " / ", BinarySize(r.memory_limit)),
        absl::StrFormat("%.2f%%", r.memory_percent),
        absl::StrCat(HumanSize(static_cast<int64_t>(s.network_rx_bytes())), " / ",
                     HumanSize(static_cast<int64_t>(s.network_tx_bytes()))),
        absl::StrCat(HumanSize(static_cast<int64_t>(s.block_read_bytes())), " / ",
                     HumanSize(static_cast<int64_t>(s.block_write_bytes()))),
        absl::StrCat(s.pids()),
    });
  }
  // Redraw in place on a terminal, as docker stats does.
  if (clear) std::cout << "\033[2J\033[H";
  PrintTable({"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
              "PIDS"},
             table);
}

int Stats(CliContext& ctx, const StatsOptions& options) {
  auto metrics = ctx.Metrics();
  grpc::ClientContext context;  // A stream: no deadline while it is followed.
  if (options.no_stream) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options.interval_ms) + std::chrono::seconds(30));
  }
  v1::StreamStatsRequest request;
  for (const std::string& c : options.containers) request.add_ids(c);
  request.set_interval_ms(static_cast<uint32_t>(options.interval_ms));
  std::unique_ptr<grpc::ClientReaderInterface<v1::StreamStatsResponse>> reader =
      metrics->StreamStats(&context, request);
  const bool tty = ::isatty(STDOUT_FILENO) == 1 && ctx.options().format != "json";
  std::map<std::string, v1::ContainerStats> before;
  v1::StreamStatsResponse response;
  bool first = true;
  while (reader->Read(&response)) {
    std::vector<Row> rows = MakeRows(response, before);
    before.clear();
    for (const v1::ContainerStats& s : response.stats()) before[s.id()] = s;
    // The first sample has no CPU % yet: it is shown only when streaming to a terminal.
    if (first) {
      first = false;
      if (options.no_stream || !tty) continue;
    }
    Print(ctx, options, rows, tty);
    if (options.no_stream) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    PrintError("stats", status, "metrics");
    return kExitFailure;
  }
  return 0;
}

}  // namespace

void RegisterStatsCommands(CLI::App& app, CliContext& context, int* exit_code) {
  auto options = std::make_shared<StatsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "stats", "Live resource usage of running containers (CPU, memory, network, block I/O)");
  cmd->add_flag("--no-stream", options->no_stream, "Print one sample and exit");
  cmd->add_flag("--no-trunc", options->no_trunc, "Show full container ids");
  cmd->add_option("--interval-ms", options->interval_ms, "Time between samples")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  cmd->add_option("containers", options->containers, "Containers (default: all running)");
  cmd->callback([&context, options, exit_code] { *exit_code = Stats(context, *options); });
}

}  // namespace nodeagent::nodectl
