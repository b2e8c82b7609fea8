// End-to-end: the metrics service of a real node (started by `nodectl up` on its own dirs and a
// free loopback port), scraped over HTTP, checked against what the kernel did to real
// containers (a --cpus 0.5 burner, a 200 MiB allocation, an OOM kill), linted by promtool, and
// scraped by a real Prometheus (Debian's) through which every dashboard query must return
// series. Runs as root.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/subprocess.h"

extern char** environ;

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// A port the kernel considers free right now (bound to port 0, then released).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// GET http://127.0.0.1:port/path; the body, or nullopt when the server cannot be reached or
// does not answer 200.
std::optional<std::string> HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string response;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos || !absl::StartsWith(response, "HTTP/1.") ||
      response.substr(9, 3) != "200") {
    return std::nullopt;
  }
  return response.substr(body + 4);
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// Value of the first sample of `metric` whose labels contain every `label="value"` given.
std::optional<double> SampleValue(const std::string& text, const std::string& metric,
                                  const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, metric + "{")) continue;
    bool all = true;
    for (const std::string& l : labels) all = all && absl::StrContains(line, l);
    if (!all) continue;
    double value = 0;
    size_t space = line.rfind(' ');
    if (absl::SimpleAtod(line.substr(space + 1), &value)) return value;
  }
  return std::nullopt;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return condition();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class MetricsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = MakeTempDir("/var/tmp", "nodeagent-metrics-e2e");
    cgroup_parent_ = absl::StrCat("nodeagent-metrics-e2e-", getpid());
    port_ = FreePort();
    ASSERT_GT(port_, 0);
    CommandResult up =
        Nodectl({"up", "--root", base_ + "/state", "--log-dir", base_ + "/log", "--metrics-address",
                 absl::StrCat("127.0.0.1:", port_), "--cgroup-parent", cgroup_parent_});
    ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  }

  static void TearDownTestSuite() {
    CommandResult ids = Nodectl({"ps", "-a", "-q"});
    for (absl::string_view id : absl::StrSplit(ids.out, '\n', absl::SkipEmpty())) {
      Nodectl({"rm", "-f", std::string(id)});
    }
    // Networks (the default bridge, made by the first `run`) outlive the services.
    CommandResult nets = Nodectl({"network", "ls", "-q"});
    for (absl::string_view net : absl::StrSplit(nets.out, '\n', absl::SkipEmpty())) {
      Nodectl({"network", "rm", std::string(net)});
    }
    CommandResult down = Nodectl({"down"});
    EXPECT_EQ(down.exit_code, 0) << down.out << down.err;
    for (const char* c : {"memory", "cpu", "cpuacct", "pids", "cpuset", "freezer", "blkio",
                          "devices", "unified", ""}) {
      std::string dir = absl::StrCat("/sys/fs/cgroup/", c, c[0] ? "/" : "", cgroup_parent_);
      rmdir(dir.c_str());
    }
    RunCommand({"rm", "-rf", "--one-file-system", base_});
  }

  void TearDown() override {
    for (const std::string& name : started_) Nodectl({"rm", "-f", name});
    CommandResult ps = Nodectl({"ps", "-a", "-q"});
    EXPECT_EQ(ps.out, "") << "containers left behind";
  }

  static CommandResult Nodectl(std::vector<std::string> args) {
    args.insert(args.begin(), {NODECTL_PATH, "--run-dir", base_ + "/run"});
    return RunCommand(args);
  }

  // `nodectl run -d --name NAME FLAGS... busybox ARGS...`; the container's id.
  std::string RunDetached(const std::string& name, std::vector<std::string> flags,
                          std::vector<std::string> args) {
    std::vector<std::string> argv = {"run", "-d", "--name", name};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("busybox");
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult run = Nodectl(argv);
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
    started_.push_back(name);
    return std::string(absl::StripAsciiWhitespace(run.out));
  }

  static std::string Scrape() { return HttpGet(port_, "/metrics").value_or(""); }

  static std::string Name(const std::string& base) { return absl::StrCat(base, "-", getpid()); }
  static std::string NameLabel(const std::string& name) {
    return absl::StrCat("name=\"", name, "\"");
  }

  // Waits until the exporter shows `metric` for container `name` satisfying `ok`.
  static std::optional<double> WaitForValue(const std::string& metric, const std::string& name,
                                            const std::function<bool(double)>& ok,
                                            std::chrono::milliseconds timeout) {
    std::optional<double> value;
    WaitFor(
        [&] {
          value = SampleValue(Scrape(), metric, {NameLabel(name)});
          return value.has_value() && ok(*value);
        },
        timeout);
    return value;
  }

  std::vector<std::string> started_;
  static std::string base_;
  static std::string cgroup_parent_;
  static int port_;
};

std::string MetricsE2E::base_;
std::string MetricsE2E::cgroup_parent_;
int MetricsE2E::port_ = 0;

TEST_F(MetricsE2E, ContainerAppearsWithCadvisorLabelsAndGoesAfterRemove) {
  std::string name = Name("appear");
  std::string id = RunDetached(name, {"--label", "tier=e2e", "-m", "64m", "--pids-limit", "50"},
                               {"sleep", "3600"});
  ASSERT_EQ(id.size(), 64u) << id;
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape();
        return absl::StrContains(text, NameLabel(name));
      },
      std::chrono::seconds(5)))
      << text;
  std::vector<std::string> labels = {absl::StrCat("id=\"/", cgroup_parent_, "/", id, "\""),
                                     "image=\"busybox\"", NameLabel(name),
                                     "container_label_tier=\"e2e\""};
  for (const char* metric :
       {"container_cpu_usage_seconds_total", "container_memory_usage_bytes",
        "container_memory_working_set_bytes", "container_memory_rss", "container_memory_cache",
        "container_memory_failcnt", "container_oom_events_total", "container_threads",
        "container_start_time_seconds", "container_last_seen"}) {
    EXPECT_TRUE(SampleValue(text, metric, labels).has_value()) << metric << "\n" << text;
  }
  EXPECT_EQ(SampleValue(text, "container_spec_memory_limit_bytes", labels), 64.0 * 1024 * 1024);
  EXPECT_EQ(SampleValue(text, "container_threads_max", labels), 50.0);
  EXPECT_EQ(SampleValue(text, "container_threads", labels), 1.0);
  EXPECT_THAT(text, HasSubstr("# TYPE container_cpu_usage_seconds_total counter"));
  EXPECT_THAT(text, HasSubstr("container_memory_usage_bytes{id=\"/\"}"));

  // nodectl stats (the gRPC API) shows it too.
  CommandResult stats = Nodectl({"stats", "--no-stream", "--interval-ms", "200", name});
  EXPECT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("MEM USAGE / LIMIT"));
  EXPECT_THAT(stats.out, HasSubstr(name));
  EXPECT_THAT(stats.out, HasSubstr("/ 64MiB"));

  CommandResult rm = Nodectl({"rm", "-f", name});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_TRUE(WaitFor([&] { return !absl::StrContains(Scrape(), NameLabel(name)); },
                      std::chrono::seconds(5)));
  EXPECT_EQ(Nodectl({"stats", "--no-stream", name}).exit_code, 1);
}

TEST_F(MetricsE2E, HalfACoreLimitShowsARateOfAboutHalf) {
  std::string name = Name("burner");
  RunDetached(name, {"--cpus", "0.5"}, {"sh", "-c", "while :; do :; done"});
  struct Point {
    double usage = -1, seen = 0, periods = 0, throttled = 0;
  };
  // One scrape; the exporter's own clock (container_last_seen) times it.
  auto point = [&] {
    std::string text = Scrape();
    auto v = [&](const char* metric) {
      return SampleValue(text, metric, {NameLabel(name)}).value_or(-1);
    };
    return Point{v("container_cpu_usage_seconds_total"), v("container_last_seen"),
                 v("container_cpu_cfs_periods_total"),
                 v("container_cpu_cfs_throttled_periods_total")};
  };
  ASSERT_TRUE(WaitFor([&] { return point().usage > 0.2; }, std::chrono::seconds(10)));
  // Two scrapes a few seconds apart. The quota is what holds the container to half a core only
  // when the host has half a core to give: on a host busy with other work the burner gets less
  // and is not throttled. Such windows are measured again, and the test is skipped (not passed)
  // if the host never had the half core free.
  double rate = 0;
  bool starved = true;
  for (int attempt = 0; attempt < 3 && starved; ++attempt) {
    Point p0 = point();
    std::this_thread::sleep_for(std::chrono::seconds(4));
    Point p1 = point();
    ASSERT_GT(p1.seen - p0.seen, 3.0);
    rate = (p1.usage - p0.usage) / (p1.seen - p0.seen);
    double throttled_share = (p1.throttled - p0.throttled) / std::max(1.0, p1.periods - p0.periods);
    starved = rate < 0.4 && throttled_share < 0.5;
    if (!starved) {
      EXPECT_NEAR(rate, 0.5, 0.1) << "usage " << p0.usage << " -> " << p1.usage << " over "
                                  << (p1.seen - p0.seen) << " s";
      EXPECT_GT(p1.throttled, p0.throttled);
    }
  }
  // Whatever the host's load, a container never gets more than its quota.
  EXPECT_LT(rate, 0.6);
  std::string text = Scrape();
  EXPECT_EQ(SampleValue(text, "container_spec_cpu_quota", {NameLabel(name)}), 50000.0);
  EXPECT_EQ(SampleValue(text, "container_spec_cpu_period", {NameLabel(name)}), 100000.0);

  // nodectl stats (CPU % of one core) agrees.
  CommandResult stats = Nodectl({"--format", "json", "stats", "--no-stream", name});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(stats.out, m, std::regex("\"cpu_percent\":([0-9.]+)")))
      << stats.out;
  double percent = std::stod(m[1]);
  EXPECT_GT(percent, 5.0) << stats.out;
  EXPECT_LT(percent, 62.0) << stats.out;
  if (starved) {
    GTEST_SKIP() << "the host never had half a core free for the burner (rate " << rate
                 << " s/s, hardly throttled): too busy to check the 0.5 rate";
  }
  EXPECT_NEAR(percent, 50.0, 12.0) << stats.out;
}

TEST_F(MetricsE2E, WorkingSetOfA200MiBContainer) {
  std::string name = Name("mem200");
  // dd reads 200 MiB of zeros into one buffer (anonymous memory, all of it touched), then
  // blocks for ever writing it into a pipe nobody reads. (/dev/shm would be charged too, but it
  // is a 64 MiB tmpfs, as Docker's.)
  RunDetached(name, {"-m", "512m"}, {"sh", "-c", "dd if=/dev/zero bs=200M count=1 | sleep 3600"});
  constexpr double kTarget = 200.0 * 1024 * 1024;
  std::optional<double> ws = WaitForValue(
      "container_memory_working_set_bytes", name, [&](double v) { return v >= kTarget; },
      std::chrono::seconds(20));
  ASSERT_TRUE(ws.has_value());
  EXPECT_NEAR(*ws, kTarget, kTarget * 0.03) << "working set " << *ws / 1048576 << " MiB";
  std::string text = Scrape();
  EXPECT_GE(SampleValue(text, "container_memory_usage_bytes", {NameLabel(name)}).value_or(0), *ws);
}

TEST_F(MetricsE2E, OomKillIncrementsOomEvents) {
  std::string name = Name("oom");
  // awk doubles a string until the 32 MiB limit is hit; the kernel kills awk (the largest
  // process), the shell goes on sleeping.
  RunDetached(name, {"-m", "32m"},
              {"sh", "-c", "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; sleep 3600"});
  std::optional<double> ooms = WaitForValue(
      "container_oom_events_total", name, [](double v) { return v >= 1; },
      std::chrono::seconds(30));
  ASSERT_TRUE(ooms.has_value());
  EXPECT_EQ(*ooms, 1.0);
  std::string text = Scrape();
  EXPECT_GT(SampleValue(text, "container_memory_failcnt", {NameLabel(name)}).value_or(0), 0);
  // The container itself is still running (only awk was killed).
  EXPECT_TRUE(SampleValue(text, "container_last_seen", {NameLabel(name)}).has_value());
}

TEST_F(MetricsE2E, PromtoolFindsNoProblemsBeyondCadvisorsLegacyNames) {
  std::string name = Name("lint");
  RunDetached(name, {"--label", "app.kubernetes.io/name=lint", "--cpus", "0.2"}, {"sleep", "3600"});
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape();
        return absl::StrContains(text, NameLabel(name));
      },
      std::chrono::seconds(5)));
  CommandResult check = RunCommand({"promtool", "check", "metrics"}, text);
  // cAdvisor's own names that promtool's lint flags; everything else must be clean.
  const std::set<std::string> kLegacy = {
      "container_memory_failcnt",  // A counter without _total.
  };
  std::string problems = check.out + check.err;
  for (absl::string_view line : absl::StrSplit(problems, '\n', absl::SkipWhitespace())) {
    std::string metric(line.substr(0, line.find(' ')));
    EXPECT_TRUE(kLegacy.count(metric) == 1) << "promtool: " << line;
  }
  EXPECT_THAT(problems, Not(HasSubstr("error while linting")));
  EXPECT_THAT(problems, Not(HasSubstr("parse")));
}

// The host PID of a running container's first process (`nodectl inspect`).
pid_t ContainerPid(const std::string& inspect_json) {
  std::smatch m;
  if (!std::regex_search(inspect_json, m, std::regex("\"pid\":\\s*([0-9]+)"))) return 0;
  return std::stoi(m[1]);
}

// A veth pair between the network namespaces of two running processes, as eth1 in each, with
// 10.254.N.1/30 on the first and .2 on the second: a private link no host route reaches. The
// pair goes when either namespace goes; the destructor also removes it should the test fail
// before it was moved out of the host's namespace.
class VethLink {
 public:
  VethLink(pid_t a, pid_t b)
      : tmp_a_(absl::StrCat("nmA", getpid())), tmp_b_(absl::StrCat("nmB", getpid())) {
    std::string net = absl::StrCat("10.254.", getpid() % 250, ".");
    address_a_ = net + "1";
    address_b_ = net + "2";
    ok_ = Run({"ip", "link", "add", tmp_a_, "type", "veth", "peer", "name", tmp_b_}) &&
          Run({"ip", "link", "set", tmp_a_, "netns", absl::StrCat(a)}) &&
          Run({"ip", "link", "set", tmp_b_, "netns", absl::StrCat(b)}) &&
          Configure(a, tmp_a_, address_a_) && Configure(b, tmp_b_, address_b_);
  }
  ~VethLink() { RunCommand({"ip", "link", "del", tmp_a_}); }

  bool ok() const { return ok_; }
  const std::string& address_a() const { return address_a_; }
  const std::string& address_b() const { return address_b_; }
  std::string error() const { return error_; }

 private:
  bool Run(const std::vector<std::string>& argv) {
    CommandResult r = RunCommand(argv);
    if (r.exit_code != 0) absl::StrAppend(&error_, absl::StrJoin(argv, " "), ": ", r.err, "\n");
    return r.exit_code == 0;
  }
  bool Configure(pid_t pid, const std::string& tmp_name, const std::string& address) {
    std::vector<std::string> in_ns = {"nsenter", "-t", absl::StrCat(pid), "-n", "ip"};
    auto ip = [&](std::vector<std::string> args) {
      std::vector<std::string> argv = in_ns;
      argv.insert(argv.end(), args.begin(), args.end());
      return Run(argv);
    };
    return ip({"link", "set", tmp_name, "name", "eth1"}) &&
           ip({"addr", "add", address + "/30", "dev", "eth1"}) && ip({"link", "set", "eth1", "up"});
  }

  std::string tmp_a_, tmp_b_, address_a_, address_b_, error_;
  bool ok_ = false;
};

TEST_F(MetricsE2E, NetworkCountersComeFromTheContainersOwnNamespace) {
  // Two containers with namespaces of their own (loopback only), joined by a veth pair this
  // test makes; known traffic from one to the other must show on both sides' counters, under
  // the interface's name, and nowhere else.
  std::string left = Name("net-left");
  std::string right = Name("net-right");
  RunDetached(left, {"--network", "none"}, {"sleep", "3600"});
  RunDetached(right, {"--network", "none"}, {"sleep", "3600"});
  pid_t left_pid = ContainerPid(Nodectl({"inspect", left}).out);
  pid_t right_pid = ContainerPid(Nodectl({"inspect", right}).out);
  ASSERT_GT(left_pid, 0);
  ASSERT_GT(right_pid, 0);
  VethLink link(left_pid, right_pid);
  ASSERT_TRUE(link.ok()) << link.error();
  // 20 pings of 1000 bytes from the left container to the right one: each way 20 frames of
  // 1042 bytes (ICMP 8 + IP 20 + Ethernet 14 bytes of headers).
  CommandResult ping =
      RunCommand({"nsenter", "-t", absl::StrCat(left_pid), "-n", "busybox", "ping", "-c", "20",
                  "-i", "0.05", "-s", "1000", "-W", "2", link.address_b()});
  ASSERT_EQ(ping.exit_code, 0) << ping.out << ping.err;
  constexpr double kBytes = 20 * 1000;
  const std::string eth1 = "interface=\"eth1\"";
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape();
        return SampleValue(text, "container_network_receive_bytes_total", {NameLabel(right), eth1})
                   .value_or(0) >= kBytes;
      },
      std::chrono::seconds(5)))
      << text;
  for (const std::string& name : {left, right}) {
    for (const char* metric :
         {"container_network_receive_bytes_total", "container_network_transmit_bytes_total"}) {
      EXPECT_GE(SampleValue(text, metric, {NameLabel(name), eth1}).value_or(0), kBytes)
          << metric << " " << name;
    }
    for (const char* metric :
         {"container_network_receive_packets_total", "container_network_transmit_packets_total"}) {
      EXPECT_GE(SampleValue(text, metric, {NameLabel(name), eth1}).value_or(0), 20) << metric;
    }
    EXPECT_EQ(SampleValue(text, "container_network_receive_errors_total", {NameLabel(name), eth1}),
              0.0);
    EXPECT_TRUE(SampleValue(text, "container_network_transmit_packets_dropped_total",
                            {NameLabel(name), eth1})
                    .has_value());
    // Loopback is left out, as cAdvisor leaves it out.
    EXPECT_FALSE(SampleValue(text, "container_network_receive_bytes_total",
                             {NameLabel(name), "interface=\"lo\""})
                     .has_value());
  }
  // The gRPC stats (and nodectl stats' NET I/O column) add up the same interfaces.
  CommandResult stats = Nodectl({"--format", "json", "stats", "--no-stream", right});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(stats.out, m, std::regex("\"network_rx_bytes\":\"?([0-9]+)")))
      << stats.out;
  EXPECT_GE(std::stod(m[1]), kBytes) << stats.out;
  CommandResult table = Nodectl({"stats", "--no-stream", right});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  // The NET I/O column: "21.4kB / 21.4kB" (columns are two or more spaces apart).
  std::vector<std::string> lines = absl::StrSplit(table.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << table.out;
  std::regex columns("\\s{2,}");
  std::vector<std::string> header(
      std::sregex_token_iterator(lines[0].begin(), lines[0].end(), columns, -1), {});
  std::vector<std::string> row(
      std::sregex_token_iterator(lines[1].begin(), lines[1].end(), columns, -1), {});
  auto column = std::find(header.begin(), header.end(), "NET I/O");
  ASSERT_NE(column, header.end()) << table.out;
  ASSERT_EQ(row.size(), header.size()) << table.out;
  EXPECT_TRUE(
      std::regex_match(row[column - header.begin()],
                       std::regex("(2[0-9]|[3-9][0-9])\\.[0-9]kB / (2[0-9]|[3-9][0-9])\\.[0-9]kB")))
      << table.out;
}

TEST_F(MetricsE2E, BridgeNetworkCountersShowTheContainersTraffic) {
  // A container on the default bridge network pings its gateway (the node's bridge) with 20
  // packets of 1000 bytes: its eth0 must count at least that much each way.
  std::string name = Name("bridged");
  RunDetached(name, {"--network", "bridge"},
              {"sh", "-c",
               "ping -c 20 -i 0.05 -s 1000 -W 2 $(ip route | awk '/^default/ {print $3}') "
               "> /dev/null; sleep 3600"});
  constexpr double kBytes = 20 * 1000;
  const std::string eth0 = "interface=\"eth0\"";
  std::string text;
  bool counted = WaitFor(
      [&] {
        text = Scrape();
        return SampleValue(text, "container_network_transmit_bytes_total", {NameLabel(name), eth0})
                       .value_or(0) >= kBytes &&
               SampleValue(text, "container_network_receive_bytes_total", {NameLabel(name), eth0})
                       .value_or(0) >= kBytes;
      },
      std::chrono::seconds(15));
  EXPECT_TRUE(counted) << Nodectl({"logs", name}).out << "\n" << text;
  EXPECT_GE(SampleValue(text, "container_network_transmit_packets_total", {NameLabel(name), eth0})
                .value_or(0),
            20);
  EXPECT_GE(SampleValue(text, "container_network_receive_packets_total", {NameLabel(name), eth0})
                .value_or(0),
            20);
  // The host's end of the pair (veth*) is not the container's and is never reported.
  EXPECT_THAT(text, Not(HasSubstr("interface=\"veth")));
}

TEST_F(MetricsE2E, HostNetworkContainersReportNoNetworkOfTheirOwn) {
  // A --network host container sees the host's interfaces in /proc/<pid>/net/dev; they are not
  // its own, and cAdvisor reports no network for such a container. The node's totals (id="/")
  // still carry them.
  std::string name = Name("hostnet");
  RunDetached(name, {"--network", "host"}, {"sleep", "3600"});
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Scrape();
        return SampleValue(text, "container_last_seen", {NameLabel(name)}).has_value();
      },
      std::chrono::seconds(5)))
      << text;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "container_network_")) {
      EXPECT_THAT(std::string(line), Not(HasSubstr(NameLabel(name))));
    }
  }
  EXPECT_TRUE(SampleValue(text, "container_network_receive_bytes_total", {"id=\"/\""}).has_value())
      << text;
  CommandResult stats = Nodectl({"--format", "json", "stats", "--no-stream", name});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("\"network_rx_bytes\":\"0\"")) << stats.out;
}

// Debian's Prometheus, on loopback with deploy/prometheus.yml pointed at this node's exporter.
class Prometheus {
 public:
  static std::unique_ptr<Prometheus> Start(const std::string& dir, int exporter_port) {
    std::string config = ReadText(std::string(SOURCE_DIR) + "/deploy/prometheus.yml");
    if (config.empty()) return nullptr;
    config =
        absl::StrReplaceAll(config, {{"127.0.0.1:9323", absl::StrCat("127.0.0.1:", exporter_port)},
                                     {"scrape_interval: 15s", "scrape_interval: 1s"},
                                     {"evaluation_interval: 15s", "evaluation_interval: 1s"}});
    std::ofstream(dir + "/prometheus.yml") << config;
    auto p = std::unique_ptr<Prometheus>(new Prometheus());
    p->port_ = FreePort();
    std::vector<std::string> args = {"prometheus", "--config.file=" + dir + "/prometheus.yml",
                                     "--storage.tsdb.path=" + dir + "/data",
                                     absl::StrCat("--web.listen-address=127.0.0.1:", p->port_),
                                     "--log.level=warn"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    std::string log = dir + "/prometheus.log";
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int rc = posix_spawnp(&p->pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return nullptr;
    return p;
  }

  ~Prometheus() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
    }
  }

  // The JSON answer of an instant query, or "" when Prometheus does not answer.
  std::string Query(const std::string& promql) const {
    return HttpGet(port_, "/api/v1/query?query=" + UrlEncode(promql)).value_or("");
  }

 private:
  Prometheus() = default;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Every PromQL expression of the dashboards, with Grafana's variables filled in.
std::vector<std::string> DashboardQueries() {
  std::vector<std::string> queries;
  std::string dir = std::string(SOURCE_DIR) + "/dashboards";
  CommandResult files = RunCommand({"sh", "-c", "ls " + dir + "/*.json"});
  std::regex expr("\"expr\": \"((?:[^\"\\\\]|\\\\.)*)\"");
  for (absl::string_view file : absl::StrSplit(files.out, '\n', absl::SkipEmpty())) {
    std::string json = ReadText(std::string(file));
    for (auto it = std::sregex_iterator(json.begin(), json.end(), expr);
         it != std::sregex_iterator(); ++it) {
      std::string q = absl::StrReplaceAll((*it)[1].str(), {{"\\\"", "\""}, {"\\\\", "\\"}});
      queries.push_back(
          absl::StrReplaceAll(q, {{"$container", ".+"}, {"$__rate_interval", "10s"}}));
    }
  }
  return queries;
}

TEST_F(MetricsE2E, RealPrometheusAnswersEveryDashboardQuery) {
  std::vector<std::string> queries = DashboardQueries();
  ASSERT_GE(queries.size(), 10u);
  // Containers for every panel: a CPU-limited burner (CPU, throttling) and one with a memory
  // limit (memory usage vs limit).
  std::string burner = Name("prom-burner");
  std::string mem = Name("prom-mem");
  RunDetached(burner, {"--cpus", "0.3"}, {"sh", "-c", "while :; do :; done"});
  RunDetached(mem, {"-m", "128m"},
              {"sh", "-c", "dd if=/dev/zero of=/dev/shm/f bs=1M count=20 2>/dev/null; sleep 3600"});
  std::string dir = MakeTempDir(base_, "prometheus");
  std::unique_ptr<Prometheus> prometheus = Prometheus::Start(dir, port_);
  ASSERT_NE(prometheus, nullptr) << "cannot start prometheus (apt-get install prometheus)";
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(prometheus->Query("up{job=\"nodeagent\"} == 1"), "\"value\"");
      },
      std::chrono::seconds(30)))
      << ReadText(dir + "/prometheus.log");
  // rate() over 10s needs a few scrapes of the containers.
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(
            prometheus->Query(absl::StrCat("rate(container_cpu_usage_seconds_total{name=\"", burner,
                                           "\"}[10s]) > 0")),
            "\"value\"");
      },
      std::chrono::seconds(30)));
  for (const std::string& q : queries) {
    std::string answer;
    bool ok = WaitFor(
        [&] {
          answer = prometheus->Query(q);
          return absl::StrContains(answer, "\"status\":\"success\"") &&
                 absl::StrContains(answer, "\"value\"");
        },
        std::chrono::seconds(10));
    EXPECT_TRUE(ok) << q << "\n" << answer;
    // Per-container panels must show our containers.
    if (absl::StrContains(q, "by (name)") && !absl::StrContains(q, "topk")) {
      EXPECT_TRUE(absl::StrContains(answer, burner) || absl::StrContains(answer, mem)) << q << "\n"
                                                                                       << answer;
      // The node's own series (id="/", no name) stay out of per-container panels.
      EXPECT_THAT(answer, Not(HasSubstr("\"metric\":{}"))) << q << "\n" << answer;
    }
  }
  // The container variable's values.
  std::string series = prometheus->Query("count by (name) (container_last_seen{name!=\"\"})");
  EXPECT_THAT(series, HasSubstr(burner));
  EXPECT_THAT(series, HasSubstr(mem));
  prometheus.reset();
  RunCommand({"rm", "-rf", "--one-file-system", dir});
}

}  // namespace
}  // namespace nodeagent::testing
