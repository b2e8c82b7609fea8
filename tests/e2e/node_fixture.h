#pragma once

// A node of the test's own for end-to-end tests: the four services started by `nodectl up` on
// private --root, --run-dir, --log-dir and --cgroup-parent, torn down (with anything a failed
// test left running) after the suite. Tests drive it through nodectl, as a user would.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/subprocess.h"

namespace nodeagent::testing {

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Mount points of the host (this test's mount namespace), as "mountpoint fstype" lines.
inline std::set<std::string> HostMounts() {
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(ReadText("/proc/self/mountinfo"), '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4) out.insert(f[4]);
  }
  return out;
}

// Directories of the given cgroup parent under every hierarchy on this host.
inline std::vector<std::string> CgroupDirsOf(const std::string& parent) {
  std::vector<std::string> dirs;
  for (const char* c : {"memory", "cpu,cpuacct", "cpu", "cpuacct", "pids", "cpuset", "freezer",
                        "blkio", "devices", "unified", ""}) {
    std::string dir = absl::StrCat("/sys/fs/cgroup/", c, c[0] ? "/" : "", parent);
    if (Exists(dir)) dirs.push_back(dir);
  }
  return dirs;
}

class NodeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = MakeTempDir("/var/tmp", "nodeagent-e2e");
    cgroup_parent_ = absl::StrCat("nodeagent-e2e-", getpid());
    CommandResult up = Nodectl({"up", "--root", base_ + "/state", "--log-dir", base_ + "/log",
                                "--metrics-address", "", "--cgroup-parent", cgroup_parent_});
    ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  }

  static void TearDownTestSuite() {
    // Whatever a failed test left running goes first, then the services.
    CommandResult ids = Nodectl({"ps", "-a", "-q"});
    for (absl::string_view id : absl::StrSplit(ids.out, '\n', absl::SkipEmpty())) {
      Nodectl({"rm", "-f", std::string(id)});
    }
    // `run` attaches to the default bridge network, made on first use; networks outlive the
    // services (as Docker's do), so the suite removes them with their bridges and rules.
    CommandResult nets = Nodectl({"network", "ls", "-q"});
    for (absl::string_view net : absl::StrSplit(nets.out, '\n', absl::SkipEmpty())) {
      Nodectl({"network", "rm", std::string(net)});
    }
    CommandResult down = Nodectl({"down"});
    EXPECT_EQ(down.exit_code, 0) << down.out << down.err;
    // Only the parent may be left: no container's cgroup and no warm slot's.
    for (const std::string& dir : CgroupDirsOf(cgroup_parent_)) {
      EXPECT_TRUE(rmdir(dir.c_str()) == 0 || errno == ENOENT) << "cgroups left below " << dir;
    }
    RunCommand({"rm", "-rf", "--one-file-system", base_});
  }

  void TearDown() override {
    // Every test leaves no container behind.
    CommandResult ps = Nodectl({"ps", "-a", "-q"});
    EXPECT_EQ(ps.out, "") << "containers left behind";
  }

  static CommandResult Nodectl(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {NODECTL_PATH, "--run-dir", RunDir()});
    return RunCommand(args, input);
  }
  // One top-level field of `nodectl inspect CONTAINER` (the first occurrence), unquoted.
  static std::string InspectField(const std::string& container, const std::string& key) {
    CommandResult inspect = Nodectl({"inspect", container});
    std::string needle = absl::StrCat("\"", key, "\": ");
    size_t at = inspect.out.find(needle);
    if (at == std::string::npos) return "";
    size_t start = at + needle.size();
    std::string value = inspect.out.substr(start, inspect.out.find_first_of(",\n", start) - start);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  static std::string RunDir() { return base_ + "/run"; }
  static std::string ImageRoot() { return base_ + "/state/image"; }
  static std::string RuntimeRoot() { return base_ + "/state/runtime"; }

  // `nodectl run --rm busybox sh -c SCRIPT`.
  static CommandResult Sh(const std::string& script, std::vector<std::string> flags = {}) {
    std::vector<std::string> args = {"run", "--rm"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"busybox", "sh", "-c", script});
    return Nodectl(args);
  }

  // `nodectl run -d ARGS...` and the new container's id.
  static std::string RunDetached(std::vector<std::string> args) {
    args.insert(args.begin(), {"run", "-d"});
    CommandResult r = Nodectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return std::string(absl::StripTrailingAsciiWhitespace(r.out));
  }

  static inline std::string base_;
  static inline std::string cgroup_parent_;
};

}  // namespace nodeagent::testing
