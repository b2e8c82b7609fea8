#pragma once

// In-memory readers for the core's tests.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "services/metrics/core/readers.h"

namespace nodeagent::metrics {

class FakeCgroupReader : public CgroupReader {
 public:
  std::string Version() const override { return "fake"; }
  std::unique_ptr<CgroupHandle> Open(const std::string& cgroup_path) const override {
    ++opens;
    return std::make_unique<Handle>(this, cgroup_path);
  }
  std::map<std::string, CgroupSample> samples;  // By cgroup path; missing ones are gone.
  mutable int opens = 0;

 private:
  class Handle : public CgroupHandle {
   public:
    Handle(const FakeCgroupReader* reader, std::string path) : reader_(reader), path_(path) {}
    absl::StatusOr<CgroupSample> Read() const override {
      auto it = reader_->samples.find(path_);
      if (it == reader_->samples.end()) return absl::NotFoundError(path_ + ": gone");
      return it->second;
    }

   private:
    const FakeCgroupReader* reader_;
    std::string path_;
  };
};

class FakeHostReader : public HostReader {
 public:
  absl::StatusOr<std::vector<InterfaceStats>> ReadNetwork(pid_t pid) const override {
    auto it = networks.find(pid);
    if (it == networks.end()) return absl::NotFoundError("no such pid");
    return it->second;
  }
  std::unique_ptr<NetworkHandle> OpenNetwork(pid_t pid) const override {
    return std::make_unique<Network>(this, pid);
  }
  absl::StatusOr<NodeSample> ReadNode() const override { return node; }
  std::string DeviceName(uint32_t major, uint32_t minor) const override {
    return major == 254 && minor == 0 ? "/dev/vda" : "";
  }
  int64_t NowUnixNanos() const override { return now; }

  std::map<pid_t, std::vector<InterfaceStats>> networks;
  NodeSample node;
  int64_t now = 1700000000000000000;

 private:
  class Network : public NetworkHandle {
   public:
    Network(const FakeHostReader* host, pid_t pid) : host_(host), pid_(pid) {}
    absl::StatusOr<std::vector<InterfaceStats>> Read() const override {
      return host_->ReadNetwork(pid_);
    }

   private:
    const FakeHostReader* host_;
    pid_t pid_;
  };
};

}  // namespace nodeagent::metrics
