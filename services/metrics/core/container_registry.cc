#include "services/metrics/core/container_registry.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/metrics/core/parse.h"

namespace nodeagent::metrics {

std::vector<std::pair<std::string, std::string>> ContainerLabels(const ContainerInfo& info) {
  std::vector<std::pair<std::string, std::string>> labels = {
      {"id", info.cgroup_path}, {"image", info.image}, {"name", info.name}};
  for (const auto& [key, value] : info.labels) {
    labels.emplace_back(ContainerLabelName(key), value);
  }
  return labels;
}

void AppendEscapedLabelValue(absl::string_view value, std::string* out) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '"':
        out->append("\\\"");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(c);
    }
  }
}

LabelSet::LabelSet(std::vector<std::pair<std::string, std::string>> label_pairs)
    : pairs(std::move(label_pairs)) {
  for (const auto& [name, value] : pairs) {
    if (!text.empty()) text.push_back(',');
    absl::StrAppend(&text, name, "=\"");
    AppendEscapedLabelValue(value, &text);
    text.push_back('"');
  }
}

bool SharesNetworkNamespace(const ContainerInfo& info) {
  return info.network_mode == "host" || absl::StartsWith(info.network_mode, "container:");
}

void ContainerRegistry::Apply(absl::string_view type, ContainerInfo info) {
  if (type == "remove") {
    absl::MutexLock lock(&mu_);
    by_id_.erase(info.id);
    return;
  }
  if (type != "exists" && type != "create" && type != "start" && type != "exit") return;
  auto tracked = std::make_shared<TrackedContainer>();
  {
    // Paths and labels are static: reuse what the last event of this container computed.
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(info.id);
    if (it != by_id_.end() && it->second->info.cgroup_path == info.cgroup_path &&
        it->second->info.name == info.name) {
      tracked->labels = it->second->labels;
    }
  }
  if (tracked->labels.pairs.empty()) tracked->labels = LabelSet(ContainerLabels(info));
  if (!info.cgroup_path.empty()) tracked->cgroup = reader_->Open(info.cgroup_path);
  // A container in the host's (or another container's) network namespace has no network of its
  // own to report: its /proc/<pid>/net/dev would show the host's interfaces.
  if (host_ != nullptr && info.running && info.pid > 0 && !SharesNetworkNamespace(info)) {
    tracked->network = host_->OpenNetwork(info.pid);
  }
  tracked->info = std::move(info);
  std::string id = tracked->info.id;
  absl::MutexLock lock(&mu_);
  by_id_[id] = std::move(tracked);
}

void ContainerRegistry::Clear() {
  absl::MutexLock lock(&mu_);
  by_id_.clear();
}

std::vector<TrackedPtr> ContainerRegistry::Running() const {
  std::vector<TrackedPtr> out;
  absl::MutexLock lock(&mu_);
  out.reserve(by_id_.size());
  for (const auto& [id, c] : by_id_) {
    if (c->info.running && c->cgroup != nullptr) out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::vector<TrackedPtr>> ContainerRegistry::Find(
    const std::vector<std::string>& refs) const {
  if (refs.empty()) return Running();
  std::vector<TrackedPtr> out;
  absl::MutexLock lock(&mu_);
  for (const std::string& ref : refs) {
    TrackedPtr found;
    if (auto it = by_id_.find(ref); it != by_id_.end()) found = it->second;
    if (found == nullptr) {
      for (const auto& [id, c] : by_id_) {
        if (c->info.name == ref) found = c;
      }
    }
    if (found == nullptr && !ref.empty()) {
      for (const auto& [id, c] : by_id_) {
        if (!absl::StartsWith(id, ref)) continue;
        if (found != nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("container \"", ref, "\": id prefix is ambiguous"));
        }
        found = c;
      }
    }
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat("container \"", ref, "\": no such container"));
    }
    if (!found->info.running || found->cgroup == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("container \"", ref, "\": not running"));
    }
    out.push_back(found);
  }
  return out;
}

size_t ContainerRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return by_id_.size();
}

}  // namespace nodeagent::metrics
