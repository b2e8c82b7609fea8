#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "services/metrics/core/container_registry.h"
#include "services/metrics/core/prometheus_collector.h"
#include "tests/unit/metrics/fakes.h"

namespace nodeagent::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CgroupSample Sample() {
  CgroupSample s;
  s.cpu_usage_nanos = 2500000000;
  s.cpu_user_nanos = 2000000000;
  s.cpu_system_nanos = 500000000;
  s.cpu_periods = 100;
  s.cpu_throttled_periods = 40;
  s.cpu_throttled_nanos = 1500000000;
  s.memory_usage_bytes = 300 << 20;
  s.memory_working_set_bytes = 200 << 20;
  s.memory_rss_bytes = 150 << 20;
  s.memory_cache_bytes = 100 << 20;
  s.memory_failcnt = 7;
  s.oom_kills = 2;
  s.pids_current = 5;
  s.block_io = {{254, 0, 4096, 8192, 1, 2}};
  return s;
}

class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ContainerInfo web;
    web.id = "aaa111";
    web.name = "web";
    web.image = "busybox";
    web.cgroup_path = "/nodeagent/aaa111";
    web.labels = {{"tier", "front"}};
    web.running = true;
    web.pid = 4242;
    web.started_unix_nanos = 1600000000000000000;
    web.memory_limit_bytes = 256 << 20;
    web.cpu_quota_us = 50000;
    web.cpu_period_us = 100000;
    web.pids_limit = 64;
    registry_.Apply("start", web);
    reader_.samples["/nodeagent/aaa111"] = Sample();
    host_.networks[4242] = {{"lo", 10, 1}, {"eth0", 1000, 10, 0, 0, 2000, 20}};
    host_.node.machine_cpus = 2;
    host_.node.machine_memory_bytes = 1ull << 33;
    host_.node.totals.cpu_usage_nanos = 9000000000;
    host_.node.totals.memory_usage_bytes = 1ull << 30;
  }

  // What /metrics serves.
  std::string Scrape() {
    CadvisorCollector collector(&stats_);
    std::string text;
    collector.AppendText(&text);
    return text;
  }
  // The Collectable interface through prometheus-cpp's own serializer.
  std::string ScrapeFamilies() {
    CadvisorCollector collector(&stats_);
    prometheus::TextSerializer serializer;
    return serializer.Serialize(collector.Collect());
  }

  FakeCgroupReader reader_;
  FakeHostReader host_;
  ContainerRegistry registry_{&reader_, &host_};
  StatsReader stats_{&registry_, &host_};
};

TEST_F(CollectorTest, CadvisorNamesTypesAndLabels) {
  std::string text = Scrape();
  const std::string labels =
      R"(id="/nodeagent/aaa111",image="busybox",name="web",container_label_tier="front")";
  EXPECT_THAT(text, HasSubstr("# TYPE container_cpu_usage_seconds_total counter"));
  EXPECT_THAT(text,
              HasSubstr("container_cpu_usage_seconds_total{" + labels + R"(,cpu="total"} 2.5)"));
  EXPECT_THAT(text, HasSubstr("container_cpu_user_seconds_total{" + labels + "} 2\n"));
  EXPECT_THAT(text, HasSubstr("container_cpu_system_seconds_total{" + labels + "} 0.5\n"));
  EXPECT_THAT(text, HasSubstr("container_cpu_cfs_periods_total{" + labels + "} 100\n"));
  EXPECT_THAT(text, HasSubstr("container_cpu_cfs_throttled_periods_total{" + labels + "} 40\n"));
  EXPECT_THAT(text, HasSubstr("container_cpu_cfs_throttled_seconds_total{" + labels + "} 1.5\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE container_memory_working_set_bytes gauge"));
  EXPECT_THAT(text, HasSubstr("container_memory_working_set_bytes{" + labels + "} 209715200\n"));
  EXPECT_THAT(text, HasSubstr("container_memory_usage_bytes{" + labels + "} 314572800\n"));
  EXPECT_THAT(text, HasSubstr("container_memory_rss{" + labels + "} 157286400\n"));
  EXPECT_THAT(text, HasSubstr("container_memory_cache{" + labels + "} 104857600\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE container_memory_failcnt counter"));
  EXPECT_THAT(text, HasSubstr("container_memory_failcnt{" + labels + "} 7\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE container_oom_events_total counter"));
  EXPECT_THAT(text, HasSubstr("container_oom_events_total{" + labels + "} 2\n"));
  EXPECT_THAT(text, HasSubstr("container_spec_memory_limit_bytes{" + labels + "} 268435456\n"));
  EXPECT_THAT(text, HasSubstr("container_spec_cpu_quota{" + labels + "} 50000\n"));
  EXPECT_THAT(text, HasSubstr("container_spec_cpu_period{" + labels + "} 100000\n"));
  EXPECT_THAT(text, HasSubstr("container_threads{" + labels + "} 5\n"));
  EXPECT_THAT(text, HasSubstr("container_threads_max{" + labels + "} 64\n"));
  EXPECT_THAT(
      text, HasSubstr("container_fs_reads_bytes_total{" + labels + R"(,device="/dev/vda"} 4096)"));
  EXPECT_THAT(
      text, HasSubstr("container_fs_writes_bytes_total{" + labels + R"(,device="/dev/vda"} 8192)"));
  EXPECT_THAT(text, HasSubstr("container_start_time_seconds{" + labels + "} 1600000000\n"));
  EXPECT_THAT(text, HasSubstr("container_last_seen{" + labels + "} 1700000000\n"));
  EXPECT_THAT(text, HasSubstr("container_scrape_error 0\n"));
}

TEST_F(CollectorTest, NetworkComesFromTheNamespaceWithoutLoopback) {
  std::string text = Scrape();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(container_network_receive_bytes_total{id="/nodeagent/aaa111",image="busybox",name="web",container_label_tier="front",interface="eth0"} 1000)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(container_network_transmit_packets_total{id="/nodeagent/aaa111",image="busybox",name="web",container_label_tier="front",interface="eth0"} 20)"));
  EXPECT_THAT(text, Not(HasSubstr(R"(interface="lo")")));
}

TEST_F(CollectorTest, NodeTotalsAreTheRootContainer) {
  std::string text = Scrape();
  EXPECT_THAT(text, HasSubstr(R"(container_cpu_usage_seconds_total{id="/",cpu="total"} 9)"));
  EXPECT_THAT(text, HasSubstr(R"(container_memory_usage_bytes{id="/"} 1073741824)"));
  EXPECT_THAT(text, HasSubstr("machine_cpu_cores 2\n"));
  EXPECT_THAT(text, HasSubstr("machine_memory_bytes 8589934592\n"));
}

TEST_F(CollectorTest, NodeNetworkLeavesOutLoopbackAndContainerLinks) {
  host_.node.network = {{"lo", 1, 1}, {"eth0", 7, 1}, {"veth1234", 9, 1}};
  std::string text = Scrape();
  EXPECT_THAT(text,
              HasSubstr(R"(container_network_receive_bytes_total{id="/",interface="eth0"} 7)"));
  EXPECT_THAT(text, Not(HasSubstr(R"(id="/",interface="lo")")));
  EXPECT_THAT(text, Not(HasSubstr(R"(interface="veth1234")")));
}

TEST_F(CollectorTest, UnlimitedSpecsAreZeroAndQuotaIsLeftOut) {
  ContainerInfo plain;
  plain.id = "bbb222";
  plain.name = "plain";
  plain.cgroup_path = "/nodeagent/bbb222";
  plain.running = true;
  registry_.Apply("start", plain);
  reader_.samples["/nodeagent/bbb222"] = Sample();
  std::string text = Scrape();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(container_spec_memory_limit_bytes{id="/nodeagent/bbb222",image="",name="plain"} 0)"));
  EXPECT_THAT(
      text, HasSubstr(R"(container_threads_max{id="/nodeagent/bbb222",image="",name="plain"} 0)"));
  EXPECT_THAT(text, Not(HasSubstr(R"(container_spec_cpu_quota{id="/nodeagent/bbb222")")));
}

TEST_F(CollectorTest, GoneContainersAreLeftOutWithoutAnError) {
  reader_.samples.clear();
  std::string text = Scrape();
  EXPECT_THAT(text, Not(HasSubstr("aaa111")));
  EXPECT_THAT(text, HasSubstr("container_scrape_error 0\n"));
}

TEST_F(CollectorTest, MissingFieldsLeaveTheirMetricsOut) {
  reader_.samples["/nodeagent/aaa111"] = CgroupSample{};
  reader_.samples["/nodeagent/aaa111"].memory_usage_bytes = 1;
  std::string text = Scrape();
  EXPECT_THAT(text, Not(HasSubstr(R"(container_cpu_usage_seconds_total{id="/nodeagent)")));
  EXPECT_THAT(text, HasSubstr(R"(container_memory_usage_bytes{id="/nodeagent/aaa111")"));
}

// Series name{labels} -> value, and the HELP/TYPE lines, of a text exposition.
struct Parsed {
  std::map<std::string, double> series;
  std::vector<std::string> comments;
  std::vector<std::string> order;  // Metric names in order of appearance, runs collapsed.
};

Parsed Parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      p.comments.push_back(line);
      continue;
    }
    size_t space = line.rfind(' ');
    p.series[line.substr(0, space)] = std::stod(line.substr(space + 1));
    std::string name = line.substr(0, line.find_first_of("{ "));
    if (p.order.empty() || p.order.back() != name) p.order.push_back(name);
  }
  return p;
}

TEST_F(CollectorTest, ServedTextIsWhatTheCollectableReturns) {
  ContainerInfo odd;
  odd.id = "ccc333";
  odd.name = "odd";
  odd.cgroup_path = "/nodeagent/ccc333";
  odd.labels = {{"note", "a \\ \"quoted\"\nline"}};
  odd.running = true;
  odd.pid = 4343;
  registry_.Apply("start", odd);
  reader_.samples["/nodeagent/ccc333"] = Sample();
  reader_.samples["/nodeagent/ccc333"].cpu_usage_nanos = 123456789;
  host_.networks[4343] = {{"eth0", 1, 2, 3, 4, 5, 6, 7, 8}};
  Parsed served = Parse(Scrape());
  Parsed families = Parse(ScrapeFamilies());
  for (const auto& [series, value] : served.series) {
    auto it = families.series.find(series);
    if (it == families.series.end()) {
      ADD_FAILURE() << "only served: " << series;
    } else {
      // prometheus-cpp writes 16 significant digits; the served text reads back exactly.
      EXPECT_DOUBLE_EQ(value, it->second) << series;
    }
  }
  for (const auto& [series, value] : families.series) {
    EXPECT_TRUE(served.series.count(series)) << "only in Collect(): " << series;
  }
  EXPECT_EQ(served.comments, families.comments);
  EXPECT_EQ(served.order, families.order);
  // Each family's series are contiguous.
  std::set<std::string> names(served.order.begin(), served.order.end());
  EXPECT_EQ(names.size(), served.order.size());
  EXPECT_THAT(Scrape(), HasSubstr(R"(container_label_note="a \\ \"quoted\"\nline")"));
}

TEST(SampleValue, IntegersShortestDoublesAndSpecials) {
  auto text = [](double v) {
    std::string out;
    AppendSampleValue(v, &out);
    return out;
  };
  EXPECT_EQ(text(0), "0");
  EXPECT_EQ(text(268435456), "268435456");
  EXPECT_EQ(text(-3), "-3");
  EXPECT_EQ(text(0.1), "0.1");
  EXPECT_EQ(text(1700000000.25), "1700000000.25");
  EXPECT_EQ(std::stod(text(1e300)), 1e300);
  EXPECT_EQ(text(std::nan("")), "NaN");
  EXPECT_EQ(text(HUGE_VAL), "+Inf");
  EXPECT_EQ(text(-HUGE_VAL), "-Inf");
}

TEST_F(CollectorTest, ReadsNothingButTheCgroupsAtScrapeTime) {
  // Paths and labels are resolved when the container is seen, not per scrape.
  int opens = reader_.opens;
  Scrape();
  Scrape();
  EXPECT_EQ(reader_.opens, opens);
}

}  // namespace
}  // namespace nodeagent::metrics
