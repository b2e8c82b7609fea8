// The MetricsService adapter on a real in-process gRPC server over fake readers: the proto it
// returns and the status codes and messages of its errors.

#include "services/metrics/grpc/metrics_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "services/metrics/core/container_registry.h"
#include "services/metrics/grpc/runtime_watcher.h"
#include "tests/unit/metrics/fakes.h"

namespace nodeagent::metrics {
namespace {

using ::testing::HasSubstr;

class MetricsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::Container web;
    web.set_id("aaa111");
    web.set_name("web");
    web.mutable_spec()->set_image("busybox");
    web.mutable_spec()->mutable_resources()->set_memory_bytes(256 << 20);
    web.mutable_spec()->mutable_resources()->set_cpu_quota_us(50000);
    web.set_state(v1::CONTAINER_STATE_RUNNING);
    web.set_pid(4242);
    web.set_cgroup_path("/nodeagent/aaa111");
    registry_.Apply("start", ContainerInfoFromProto(web));
    v1::Container old = web;
    old.set_id("bbb222");
    old.set_name("old");
    old.set_state(v1::CONTAINER_STATE_EXITED);
    registry_.Apply("exit", ContainerInfoFromProto(old));

    CgroupSample s;
    s.cpu_usage_nanos = 123;
    s.memory_usage_bytes = 3000;
    s.memory_working_set_bytes = 2000;
    s.pids_current = 2;
    s.block_io = {{254, 0, 10, 20, 1, 1}, {8, 0, 1, 2, 1, 1}};
    reader_.samples["/nodeagent/aaa111"] = s;
    host_.networks[4242] = {{"lo", 5, 1, 0, 0, 5, 1}, {"eth0", 100, 2, 0, 0, 200, 3}};
    host_.node.machine_memory_bytes = 1 << 30;
    host_.node.machine_cpus = 2;

    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = v1::MetricsService::NewStub(server_->InProcessChannel({}));
  }
  void TearDown() override { server_->Shutdown(); }

  FakeCgroupReader reader_;
  FakeHostReader host_;
  ContainerRegistry registry_{&reader_, &host_};
  StatsReader stats_{&registry_, &host_};
  MetricsServiceImpl service_{&stats_};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::MetricsService::Stub> stub_;
};

TEST_F(MetricsServiceTest, GetStatsOfEveryRunningContainer) {
  grpc::ClientContext context;
  v1::GetStatsRequest request;
  v1::GetStatsResponse response;
  ASSERT_TRUE(stub_->GetStats(&context, request, &response).ok());
  ASSERT_EQ(response.stats_size(), 1);
  const v1::ContainerStats& s = response.stats(0);
  EXPECT_EQ(s.id(), "aaa111");
  EXPECT_EQ(s.name(), "web");
  EXPECT_EQ(s.image(), "busybox");
  EXPECT_EQ(s.cpu_usage_nanos(), 123u);
  EXPECT_EQ(s.memory_working_set_bytes(), 2000u);
  EXPECT_EQ(s.memory_limit_bytes(), 256u << 20);
  EXPECT_DOUBLE_EQ(s.cpu_limit_cores(), 0.5);
  EXPECT_EQ(s.pids(), 2u);
  // Loopback is left out; block I/O is summed over devices.
  EXPECT_EQ(s.network_rx_bytes(), 100u);
  EXPECT_EQ(s.network_tx_packets(), 3u);
  EXPECT_EQ(s.block_read_bytes(), 11u);
  EXPECT_EQ(s.block_write_bytes(), 22u);
  EXPECT_EQ(response.machine_memory_bytes(), 1u << 30);
  EXPECT_EQ(response.machine_cpus(), 2u);
}

TEST_F(MetricsServiceTest, HostNetworkContainersHaveNoNetworkFigures) {
  v1::Container hostnet;
  hostnet.set_id("ccc333");
  hostnet.set_name("hostnet");
  hostnet.mutable_spec()->mutable_network()->set_mode("host");
  hostnet.set_state(v1::CONTAINER_STATE_RUNNING);
  hostnet.set_pid(4343);
  hostnet.set_cgroup_path("/nodeagent/ccc333");
  ContainerInfo info = ContainerInfoFromProto(hostnet);
  EXPECT_EQ(info.network_mode, "host");
  registry_.Apply("start", info);
  reader_.samples["/nodeagent/ccc333"] = CgroupSample{};
  // What /proc/4343/net/dev would show: the host's interfaces.
  host_.networks[4343] = {{"eth0", 999999, 999, 0, 0, 999999, 999}};
  grpc::ClientContext context;
  v1::GetStatsRequest request;
  request.add_ids("hostnet");
  v1::GetStatsResponse response;
  ASSERT_TRUE(stub_->GetStats(&context, request, &response).ok());
  ASSERT_EQ(response.stats_size(), 1);
  EXPECT_EQ(response.stats(0).network_rx_bytes(), 0u);
  EXPECT_EQ(response.stats(0).network_tx_packets(), 0u);
}

TEST_F(MetricsServiceTest, ErrorsNameTheContainerWithTheRightCode) {
  struct Case {
    std::string ref;
    grpc::StatusCode code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"nope", grpc::StatusCode::NOT_FOUND, "container \"nope\": no such container"},
           {"old", grpc::StatusCode::FAILED_PRECONDITION, "container \"old\": not running"}}) {
    grpc::ClientContext context;
    v1::GetStatsRequest request;
    request.add_ids(c.ref);
    v1::GetStatsResponse response;
    grpc::Status status = stub_->GetStats(&context, request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.ref;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
}

TEST_F(MetricsServiceTest, StreamStatsSamplesAtTheInterval) {
  grpc::ClientContext context;
  v1::StreamStatsRequest request;
  request.add_ids("web");
  request.set_interval_ms(100);
  auto reader = stub_->StreamStats(&context, request);
  v1::StreamStatsResponse response;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader->Read(&response));
    ASSERT_EQ(response.stats_size(), 1);
    EXPECT_EQ(response.stats(0).name(), "web");
  }
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(MetricsServiceTest, StreamStatsRejectsATooShortInterval) {
  grpc::ClientContext context;
  v1::StreamStatsRequest request;
  request.set_interval_ms(10);
  auto reader = stub_->StreamStats(&context, request);
  v1::StreamStatsResponse response;
  EXPECT_FALSE(reader->Read(&response));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("interval_ms 10"));
}

}  // namespace
}  // namespace nodeagent::metrics
