#include "services/image/core/fs_changes.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/status_macros.h"
#include "services/image/core/host_ops.h"
#include "services/image/core/tar_writer.h"

namespace nodeagent::image {
namespace {

constexpr absl::string_view kWhiteoutPrefix = ".wh.";
constexpr absl::string_view kOpaqueMarker = ".wh..wh..opq";

std::string Join(const std::string& dir, const std::string& rel) {
  return rel.empty() ? dir : absl::StrCat(dir, "/", rel);
}
std::string Child(const std::string& rel, const std::string& name) {
  return rel.empty() ? name : absl::StrCat(rel, "/", name);
}

// Sorted names in a directory; a missing directory has none.
absl::StatusOr<std::vector<std::string>> SortedNames(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      return names;
    }
    return absl::InternalError(absl::StrCat("list \"", dir, "\": ", ec.message()));
  }
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat("list \"", dir, "\": ", ec.message()));
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool IsOpaque(const std::string& path) {
  absl::StatusOr<std::string> value = GetXattrNoFollow(path, std::string(kOverlayOpaqueXattr));
  return value.ok() && *value == "y";
}

// The merged listing of directory `rel` over `layers` (roots, topmost first, each of which
// has `rel` as a directory and is not hidden by an opaque directory above it).
struct MergedDir {
  // name -> index into layers of the topmost layer that has it (whiteouts included).
  std::map<std::string, size_t> winner;
};

absl::StatusOr<MergedDir> ListMerged(const std::vector<std::string>& layers,
                                     const std::string& rel) {
  MergedDir merged;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string dir = Join(layers[i], rel);
    NA_ASSIGN_OR_RETURN(std::vector<std::string> names, SortedNames(dir));
    for (const std::string& name : names) merged.winner.try_emplace(name, i);
    if (IsOpaque(dir)) break;
  }
  return merged;
}

// The layers (from `layers`, topmost first) whose `rel/name` is a directory that shows in
// the merged view, given that layer `winner` has the topmost entry and it is a directory.
std::vector<std::string> ChildLayers(const std::vector<std::string>& layers, const std::string& rel,
                                     const std::string& name, size_t winner) {
  std::vector<std::string> out;
  const std::string child = Child(rel, name);
  for (size_t j = winner; j < layers.size(); ++j) {
    absl::StatusOr<PathInfo> info = LStat(Join(layers[j], child));
    if (!info.ok()) continue;   // Not in this layer; lower ones may have it.
    if (!info->IsDir()) break;  // A file or whiteout hides everything below.
    out.push_back(layers[j]);
    if (IsOpaque(Join(layers[j], child))) break;
  }
  return out;
}

// Whether `rel/name` exists in the merged view of `layers` (a whiteout means it does not).
bool ExistsIn(const std::vector<std::string>& layers, const std::string& rel,
              const std::string& name) {
  for (const std::string& layer : layers) {
    absl::StatusOr<PathInfo> info = LStat(Join(layer, Child(rel, name)));
    if (info.ok()) return !info->IsWhiteout();
    if (IsOpaque(Join(layer, rel))) return false;
  }
  return false;
}

class ChangeWalker {
 public:
  absl::Status Walk(const std::string& upper, const std::string& rel,
                    const std::vector<std::string>& lowers) {
    NA_ASSIGN_OR_RETURN(std::vector<std::string> names, SortedNames(Join(upper, rel)));
    for (const std::string& name : names) {
      const std::string child = Child(rel, name);
      NA_ASSIGN_OR_RETURN(PathInfo info, LStat(Join(upper, child)));
      const bool below = ExistsIn(lowers, rel, name);
      if (info.IsWhiteout()) {
        if (below) changes_.push_back({'D', "/" + child});
        continue;
      }
      changes_.push_back({below ? 'C' : 'A', "/" + child});
      if (!info.IsDir()) continue;
      std::vector<std::string> child_lowers;
      if (below) {
        NA_ASSIGN_OR_RETURN(MergedDir lower_view, ListMerged(lowers, rel));
        size_t winner = lower_view.winner.at(name);
        child_lowers = ChildLayers(lowers, rel, name, winner);
      }
      if (!child_lowers.empty() && IsOpaque(Join(upper, child))) {
        // Everything the layers had here is hidden: report what the upper does not have.
        NA_ASSIGN_OR_RETURN(MergedDir hidden, ListMerged(child_lowers, child));
        NA_ASSIGN_OR_RETURN(std::vector<std::string> kept, SortedNames(Join(upper, child)));
        for (const auto& [lower_name, index] : hidden.winner) {
          absl::StatusOr<PathInfo> li = LStat(Join(child_lowers[index], Child(child, lower_name)));
          if (!li.ok() || li->IsWhiteout()) continue;
          if (!std::binary_search(kept.begin(), kept.end(), lower_name)) {
            changes_.push_back({'D', "/" + Child(child, lower_name)});
          }
        }
        child_lowers.clear();
      }
      NA_RETURN_IF_ERROR(Walk(upper, child, child_lowers));
    }
    return absl::OkStatus();
  }

  std::vector<FileChange> Take() {
    std::sort(changes_.begin(), changes_.end(),
              [](const FileChange& a, const FileChange& b) { return a.path < b.path; });
    return std::move(changes_);
  }

 private:
  std::vector<FileChange> changes_;
};

absl::Status WriteUpper(TarWriter& tar, const std::string& upper, const std::string& rel,
                        const OwnerMap& owners) {
  NA_ASSIGN_OR_RETURN(std::vector<std::string> names, SortedNames(Join(upper, rel)));
  for (const std::string& name : names) {
    const std::string child = Child(rel, name);
    const std::string path = Join(upper, child);
    NA_ASSIGN_OR_RETURN(PathInfo info, LStat(path));
    if (info.IsWhiteout()) {
      NA_RETURN_IF_ERROR(tar.AddMarker(Child(rel, absl::StrCat(kWhiteoutPrefix, name))));
      continue;
    }
    NA_RETURN_IF_ERROR(tar.AddFromDisk(path, child, &owners));
    if (info.IsDir()) {
      if (IsOpaque(path))
        NA_RETURN_IF_ERROR(tar.AddMarker(Child(child, std::string(kOpaqueMarker))));
      NA_RETURN_IF_ERROR(WriteUpper(tar, upper, child, owners));
    }
  }
  return absl::OkStatus();
}

// `upper_owners` applies to the files below `upper` (the topmost of the top-level `layers`).
absl::Status WriteMerged(TarWriter& tar, const std::vector<std::string>& layers,
                         const std::string& rel, const std::string& upper,
                         const OwnerMap& upper_owners) {
  NA_ASSIGN_OR_RETURN(MergedDir merged, ListMerged(layers, rel));
  for (const auto& [name, index] : merged.winner) {
    const std::string child = Child(rel, name);
    const std::string path = Join(layers[index], child);
    NA_ASSIGN_OR_RETURN(PathInfo info, LStat(path));
    if (info.IsWhiteout()) continue;
    const bool from_upper = !upper.empty() && absl::StartsWith(path, upper + "/");
    NA_RETURN_IF_ERROR(tar.AddFromDisk(path, child, from_upper ? &upper_owners : nullptr));
    if (info.IsDir()) {
      NA_RETURN_IF_ERROR(
          WriteMerged(tar, ChildLayers(layers, rel, name, index), child, upper, upper_owners));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<FileChange>> ComputeChanges(const std::string& upper,
                                                       const std::vector<std::string>& lowers) {
  ChangeWalker walker;
  NA_RETURN_IF_ERROR(walker.Walk(upper, "", lowers));
  return walker.Take();
}

absl::Status WriteLayerTar(const std::string& upper, LayerCompression compression,
                           const ByteSink& sink, const OwnerMap& owners) {
  TarWriter tar;
  NA_RETURN_IF_ERROR(tar.Open(compression, &sink));
  if (IsOpaque(upper)) NA_RETURN_IF_ERROR(tar.AddMarker(std::string(kOpaqueMarker)));
  NA_RETURN_IF_ERROR(WriteUpper(tar, upper, "", owners));
  return tar.Close();
}

absl::Status WriteMergedTar(const std::vector<std::string>& dirs, const ByteSink& sink,
                            const OwnerMap& upper_owners) {
  TarWriter tar;
  NA_RETURN_IF_ERROR(tar.Open(LayerCompression::kNone, &sink));
  NA_RETURN_IF_ERROR(WriteMerged(tar, dirs, "", dirs.empty() ? "" : dirs[0], upper_owners));
  return tar.Close();
}

}  // namespace nodeagent::image
