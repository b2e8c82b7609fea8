#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/metrics/core/container_registry.h"
#include "tests/unit/metrics/fakes.h"

namespace nodeagent::metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

ContainerInfo Info(const std::string& id, const std::string& name, bool running) {
  ContainerInfo info;
  info.id = id;
  info.name = name;
  info.image = "busybox";
  info.cgroup_path = "/nodeagent/" + id;
  info.running = running;
  info.pid = running ? 100 : 0;
  return info;
}

std::vector<std::string> Ids(const std::vector<TrackedPtr>& containers) {
  std::vector<std::string> out;
  for (const TrackedPtr& c : containers) out.push_back(c->info.id);
  return out;
}

TEST(ContainerRegistry, FollowsTheLifecycle) {
  FakeCgroupReader reader;
  ContainerRegistry registry(&reader);
  registry.Apply("create", Info("aaa111", "web", false));
  EXPECT_TRUE(registry.Running().empty());
  registry.Apply("start", Info("aaa111", "web", true));
  registry.Apply("exists", Info("bbb222", "db", true));
  EXPECT_THAT(Ids(registry.Running()), ElementsAre("aaa111", "bbb222"));
  registry.Apply("exit", Info("aaa111", "web", false));
  EXPECT_THAT(Ids(registry.Running()), ElementsAre("bbb222"));
  EXPECT_EQ(registry.size(), 2u);
  registry.Apply("remove", Info("aaa111", "web", false));
  EXPECT_EQ(registry.size(), 1u);
  registry.Apply("bogus", Info("ccc333", "x", true));
  EXPECT_EQ(registry.size(), 1u);
  registry.Clear();
  EXPECT_EQ(registry.size(), 0u);
}

TEST(ContainerRegistry, LabelsAreCadvisorsAndComputedOnce) {
  FakeCgroupReader reader;
  ContainerRegistry registry(&reader);
  ContainerInfo info = Info("aaa111", "web", false);
  info.labels = {{"tier", "front"}, {"com.example.team", "blue"}};
  registry.Apply("create", info);
  info.running = true;
  registry.Apply("start", info);
  std::vector<TrackedPtr> running = registry.Running();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_THAT(running[0]->labels.pairs,
              ElementsAre(Pair("id", "/nodeagent/aaa111"), Pair("image", "busybox"),
                          Pair("name", "web"), Pair("container_label_com_example_team", "blue"),
                          Pair("container_label_tier", "front")));
  EXPECT_EQ(running[0]->labels.text,
            R"(id="/nodeagent/aaa111",image="busybox",name="web",)"
            R"(container_label_com_example_team="blue",container_label_tier="front")");
}

TEST(ContainerRegistry, LabelTextIsEscapedOnce) {
  LabelSet labels(std::vector<std::pair<std::string, std::string>>{
      {"id", "/x"}, {"container_label_note", "a \\ \"b\"\nc"}});
  EXPECT_EQ(labels.text, R"(id="/x",container_label_note="a \\ \"b\"\nc")");
}

TEST(ContainerRegistry, SharedNetworkNamespacesHaveNoNetwork) {
  FakeCgroupReader reader;
  FakeHostReader host;
  ContainerRegistry registry(&reader, &host);
  ContainerInfo own = Info("aaa111", "own", true);
  own.network_mode = "bridge";
  ContainerInfo host_net = Info("bbb222", "hostnet", true);
  host_net.network_mode = "host";
  ContainerInfo joined = Info("ccc333", "joined", true);
  joined.network_mode = "container:own";
  for (const ContainerInfo& info : {own, host_net, joined}) registry.Apply("start", info);
  std::vector<TrackedPtr> running = registry.Running();
  ASSERT_EQ(running.size(), 3u);
  EXPECT_NE(running[0]->network, nullptr);
  EXPECT_EQ(running[1]->network, nullptr);
  EXPECT_EQ(running[2]->network, nullptr);
}

TEST(ContainerRegistry, FindsByIdPrefixAndName) {
  FakeCgroupReader reader;
  ContainerRegistry registry(&reader);
  registry.Apply("start", Info("aaa111", "web", true));
  registry.Apply("start", Info("aab222", "db", true));
  registry.Apply("exit", Info("ccc333", "old", false));
  EXPECT_THAT(Ids(*registry.Find({"web"})), ElementsAre("aaa111"));
  EXPECT_THAT(Ids(*registry.Find({"aab222", "aaa"})), ElementsAre("aab222", "aaa111"));
  EXPECT_THAT(Ids(*registry.Find({})), ElementsAre("aaa111", "aab222"));
  EXPECT_TRUE(absl::IsInvalidArgument(registry.Find({"aa"}).status()));
  EXPECT_TRUE(absl::IsNotFound(registry.Find({"zzz"}).status()));
  auto stopped = registry.Find({"old"});
  EXPECT_TRUE(absl::IsFailedPrecondition(stopped.status()));
  EXPECT_THAT(stopped.status().message(), ::testing::HasSubstr("\"old\": not running"));
}

}  // namespace
}  // namespace nodeagent::metrics
