#include "services/image/core/store_index.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"
#include "services/image/core/oci_config.h"

namespace nodeagent::image {
namespace {

using Json = nlohmann::json;

constexpr int kIndexVersion = 1;

absl::Status Corrupt(absl::string_view what, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
}

absl::Status CheckDigest(absl::string_view what, const std::string& digest) {
  if (!ParseSha256Digest(digest).ok()) {
    return Corrupt(what, absl::StrCat("\"", digest, "\" is not a sha256 digest"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> ParseObject(absl::string_view what, absl::string_view text) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return Corrupt(what, "not a JSON object");
  return json;
}

absl::StatusOr<absl::Time> TimeField(absl::string_view what, const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return Corrupt(what, absl::StrCat("no ", key));
  absl::StatusOr<absl::Time> time = ParseRfc3339(it->get<std::string>());
  if (!time.ok()) return Corrupt(what, time.status().message());
  return *time;
}

absl::StatusOr<int64_t> SizeField(absl::string_view what, const Json& object) {
  auto it = object.find("size");
  if (it == object.end() || !it->is_number_integer() || it->get<int64_t>() < 0) {
    return Corrupt(what, "no size");
  }
  return it->get<int64_t>();
}

}  // namespace

std::string SerializeStoreIndex(const StoreIndex& index) {
  Json images = Json::object();
  for (const auto& [id, image] : index.images) {
    images[id] = {{"names", image.names},
                  {"created", FormatRfc3339(image.created)},
                  {"layers", image.layers},
                  {"size", image.size_bytes}};
    if (!image.manifest.empty()) images[id]["manifest"] = image.manifest;
  }
  Json layers = Json::object();
  for (const auto& [diff_id, layer] : index.layers) {
    layers[diff_id] = {{"size", layer.size_bytes}, {"link", layer.link}};
  }
  Json json = {{"version", kIndexVersion}, {"images", images}, {"layers", layers}};
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

absl::StatusOr<StoreIndex> ParseStoreIndex(absl::string_view text) {
  NA_ASSIGN_OR_RETURN(Json json, ParseObject("index", text));
  auto version = json.find("version");
  if (version == json.end() || !version->is_number_integer() ||
      version->get<int>() != kIndexVersion) {
    return Corrupt("index", absl::StrCat("want version ", kIndexVersion));
  }
  StoreIndex index;
  auto layers = json.find("layers");
  if (layers == json.end() || !layers->is_object()) return Corrupt("index", "no layers");
  for (const auto& [diff_id, value] : layers->items()) {
    std::string what = absl::StrCat("index: layer ", diff_id);
    NA_RETURN_IF_ERROR(CheckDigest(what, diff_id));
    if (!value.is_object()) return Corrupt(what, "not an object");
    LayerRecord layer;
    NA_ASSIGN_OR_RETURN(layer.size_bytes, SizeField(what, value));
    auto link = value.find("link");
    if (link == value.end() || !link->is_string() || link->get<std::string>().empty() ||
        !IsLowerHex(link->get<std::string>())) {
      return Corrupt(what, "no link");
    }
    layer.link = link->get<std::string>();
    index.layers.emplace(diff_id, std::move(layer));
  }
  auto images = json.find("images");
  if (images == json.end() || !images->is_object()) return Corrupt("index", "no images");
  std::set<std::string> all_names;
  for (const auto& [id, value] : images->items()) {
    std::string what = absl::StrCat("index: image ", id);
    NA_RETURN_IF_ERROR(CheckDigest(what, id));
    if (!value.is_object()) return Corrupt(what, "not an object");
    ImageRecord image;
    NA_ASSIGN_OR_RETURN(image.created, TimeField(what, value, "created"));
    NA_ASSIGN_OR_RETURN(image.size_bytes, SizeField(what, value));
    if (auto manifest = value.find("manifest"); manifest != value.end()) {
      if (!manifest->is_string()) return Corrupt(what, "manifest is not a string");
      image.manifest = manifest->get<std::string>();
      NA_RETURN_IF_ERROR(CheckDigest(what, image.manifest));
    }
    auto names = value.find("names");
    auto image_layers = value.find("layers");
    if (names == value.end() || !names->is_array() || image_layers == value.end() ||
        !image_layers->is_array()) {
      return Corrupt(what, "no names or layers");
    }
    for (const Json& name : *names) {
      if (!name.is_string()) return Corrupt(what, "a name is not a string");
      if (!all_names.insert(name.get<std::string>()).second) {
        return Corrupt(what,
                       absl::StrCat("name \"", name.get<std::string>(), "\" is on two images"));
      }
      image.names.insert(name.get<std::string>());
    }
    for (const Json& layer : *image_layers) {
      // A layer without a record is one kept only as its blob, unpacked on first use.
      if (!layer.is_string() || !ParseSha256Digest(layer.get<std::string>()).ok()) {
        return Corrupt(what, "a layer is not a sha256 digest");
      }
      image.layers.push_back(layer.get<std::string>());
    }
    index.images.emplace(id, std::move(image));
  }
  return index;
}

uint32_t OwnerMap::Map(const std::vector<IdRange>& ranges, uint32_t host) {
  if (ranges.empty()) return host;
  for (const IdRange& r : ranges) {
    if (host >= r.host_id && host - r.host_id < r.size) return r.container_id + (host - r.host_id);
  }
  return 65534;
}

namespace {

Json RangesToJson(const std::vector<IdRange>& ranges) {
  Json out = Json::array();
  for (const IdRange& r : ranges) out.push_back({r.container_id, r.host_id, r.size});
  return out;
}

absl::StatusOr<std::vector<IdRange>> RangesFromJson(const Json& json, const char* key) {
  std::vector<IdRange> out;
  auto it = json.find(key);
  if (it == json.end()) return out;
  if (!it->is_array()) return Corrupt("snapshot record", absl::StrCat(key, " is not a list"));
  for (const Json& r : *it) {
    if (!r.is_array() || r.size() != 3 || !r[0].is_number_unsigned() ||
        !r[1].is_number_unsigned() || !r[2].is_number_unsigned()) {
      return Corrupt("snapshot record", absl::StrCat(key, ": want [container, host, size]"));
    }
    out.push_back({r[0].get<uint32_t>(), r[1].get<uint32_t>(), r[2].get<uint32_t>()});
  }
  return out;
}

}  // namespace

std::string SerializeSnapshotRecord(const SnapshotRecord& record) {
  Json json = {{"image_id", record.image_id}, {"created", FormatRfc3339(record.created)}};
  if (!record.owners.uids.empty()) json["uid_map"] = RangesToJson(record.owners.uids);
  if (!record.owners.gids.empty()) json["gid_map"] = RangesToJson(record.owners.gids);
  return json.dump(2) + "\n";
}

absl::StatusOr<SnapshotRecord> ParseSnapshotRecord(absl::string_view text) {
  NA_ASSIGN_OR_RETURN(Json json, ParseObject("snapshot record", text));
  SnapshotRecord record;
  auto id = json.find("image_id");
  if (id == json.end() || !id->is_string()) return Corrupt("snapshot record", "no image_id");
  record.image_id = id->get<std::string>();
  NA_RETURN_IF_ERROR(CheckDigest("snapshot record", record.image_id));
  NA_ASSIGN_OR_RETURN(record.created, TimeField("snapshot record", json, "created"));
  NA_ASSIGN_OR_RETURN(record.owners.uids, RangesFromJson(json, "uid_map"));
  NA_ASSIGN_OR_RETURN(record.owners.gids, RangesFromJson(json, "gid_map"));
  return record;
}

}  // namespace nodeagent::image
