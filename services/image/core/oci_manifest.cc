#include "services/image/core/oci_manifest.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"

namespace nodeagent::image {
namespace {

using Json = nlohmann::json;

// Real manifests nest 4 levels; a bound keeps nlohmann's recursive parser off the stack's end.
constexpr int kMaxNesting = 32;
// A manifest lists layers; Docker caps images at 127, registries at a few hundred.
constexpr size_t kMaxEntries = 1000;

bool TooDeep(absl::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxNesting) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

absl::StatusOr<Json> ParseJson(absl::string_view text, absl::string_view what) {
  if (TooDeep(text)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": nested deeper than ", kMaxNesting, " levels"));
  }
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat(what, ": not valid JSON"));
  if (!json.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
  return json;
}

absl::Status Bad(absl::string_view what, absl::string_view field, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": field \"", field, "\" must be ", want));
}

absl::StatusOr<std::string> String(const Json& o, const char* key, absl::string_view what,
                                   bool required = false) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) return Bad(what, key, "present");
    return std::string();
  }
  if (!it->is_string()) return Bad(what, key, "a string");
  return it->get<std::string>();
}

absl::StatusOr<std::map<std::string, std::string>> StringMap(const Json& o, const char* key,
                                                             absl::string_view what) {
  std::map<std::string, std::string> out;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return out;
  if (!it->is_object()) return Bad(what, key, "an object of strings");
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) return Bad(what, key, "an object of strings");
    out[k] = v.get<std::string>();
  }
  return out;
}

absl::StatusOr<Descriptor> ParseDescriptor(const Json& j, absl::string_view what) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
  Descriptor d;
  NA_ASSIGN_OR_RETURN(d.media_type, String(j, "mediaType", what));
  NA_ASSIGN_OR_RETURN(d.digest, String(j, "digest", what, /*required=*/true));
  if (!ParseSha256Digest(d.digest).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": digest \"", d.digest, "\" is not sha256:<64 lowercase hex>"));
  }
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return Bad(what, "size", "a non-negative integer");
  }
  d.size = size->get<int64_t>();
  NA_ASSIGN_OR_RETURN(d.annotations, StringMap(j, "annotations", what));
  if (auto p = j.find("platform"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return Bad(what, "platform", "an object");
    Platform platform;
    NA_ASSIGN_OR_RETURN(platform.os, String(*p, "os", what));
    NA_ASSIGN_OR_RETURN(platform.architecture, String(*p, "architecture", what));
    NA_ASSIGN_OR_RETURN(platform.variant, String(*p, "variant", what));
    d.platform = std::move(platform);
  }
  return d;
}

Json DescriptorToJson(const Descriptor& d) {
  Json j = Json::object();
  if (!d.media_type.empty()) j["mediaType"] = d.media_type;
  j["digest"] = d.digest;
  j["size"] = d.size;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform) {
    Json p = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) p["variant"] = d.platform->variant;
    j["platform"] = std::move(p);
  }
  return j;
}

absl::Status CheckSchemaVersion(const Json& j, absl::string_view what) {
  auto v = j.find("schemaVersion");
  if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != 2) {
    return Bad(what, "schemaVersion", "2");
  }
  return absl::OkStatus();
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

// A path inside an archive: relative, no "..", no NUL.
absl::Status CheckArchivePath(const std::string& path, absl::string_view what) {
  if (path.empty() || absl::StartsWith(path, "/") || path.find('\0') != std::string::npos ||
      path == ".." || absl::StrContains(path, "../") || absl::EndsWith(path, "/..")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": path \"", path, "\" is not a relative path inside the archive"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsIndexMediaType(absl::string_view media_type) {
  return media_type == kMediaTypeOciIndex || media_type == kMediaTypeDockerManifestList;
}

bool IsManifestMediaType(absl::string_view media_type) {
  return media_type == kMediaTypeOciManifest || media_type == kMediaTypeDockerManifest;
}

absl::StatusOr<LayerCompression> LayerCompressionOf(absl::string_view media_type) {
  if (media_type == kMediaTypeOciLayer ||
      media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar") {
    return LayerCompression::kNone;
  }
  if (media_type == kMediaTypeOciLayerGzip || media_type == kMediaTypeDockerLayerGzip ||
      media_type == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip") {
    return LayerCompression::kGzip;
  }
  if (media_type == kMediaTypeOciLayerZstd) return LayerCompression::kZstd;
  return absl::InvalidArgumentError(
      absl::StrCat("layer media type \"", media_type, "\" is not supported"));
}

std::string OciLayerMediaType(LayerCompression compression) {
  switch (compression) {
    case LayerCompression::kGzip:
      return std::string(kMediaTypeOciLayerGzip);
    case LayerCompression::kZstd:
      return std::string(kMediaTypeOciLayerZstd);
    case LayerCompression::kNone:
      break;
  }
  return std::string(kMediaTypeOciLayer);
}

absl::StatusOr<OciManifest> ParseManifest(absl::string_view text) {
  constexpr absl::string_view kWhat = "image manifest";
  NA_ASSIGN_OR_RETURN(Json j, ParseJson(text, kWhat));
  NA_RETURN_IF_ERROR(CheckSchemaVersion(j, kWhat));
  OciManifest m;
  NA_ASSIGN_OR_RETURN(m.media_type, String(j, "mediaType", kWhat));
  if (!m.media_type.empty() && !IsManifestMediaType(m.media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": media type \"", m.media_type, "\" is not an image manifest"));
  }
  auto config = j.find("config");
  if (config == j.end()) return Bad(kWhat, "config", "present");
  NA_ASSIGN_OR_RETURN(m.config, ParseDescriptor(*config, "image manifest: config"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return Bad(kWhat, "layers", "an array");
  if (layers->size() > kMaxEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": ", layers->size(), " layers, over the limit of ", kMaxEntries));
  }
  for (const Json& layer : *layers) {
    NA_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(layer, "image manifest: layer"));
    m.layers.push_back(std::move(d));
  }
  NA_ASSIGN_OR_RETURN(m.annotations, StringMap(j, "annotations", kWhat));
  return m;
}

absl::StatusOr<OciIndex> ParseIndex(absl::string_view text) {
  constexpr absl::string_view kWhat = "image index";
  NA_ASSIGN_OR_RETURN(Json j, ParseJson(text, kWhat));
  NA_RETURN_IF_ERROR(CheckSchemaVersion(j, kWhat));
  OciIndex index;
  NA_ASSIGN_OR_RETURN(index.media_type, String(j, "mediaType", kWhat));
  if (!index.media_type.empty() && !IsIndexMediaType(index.media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kWhat, ": media type \"", index.media_type, "\" is not an image index"));
  }
  auto manifests = j.find("manifests");
  if (manifests == j.end() || !manifests->is_array()) return Bad(kWhat, "manifests", "an array");
  if (manifests->size() > kMaxEntries) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": too many manifests"));
  }
  for (const Json& m : *manifests) {
    NA_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(m, "image index: manifest"));
    index.manifests.push_back(std::move(d));
  }
  NA_ASSIGN_OR_RETURN(index.annotations, StringMap(j, "annotations", kWhat));
  return index;
}

absl::StatusOr<std::string> ManifestKind(absl::string_view text) {
  NA_ASSIGN_OR_RETURN(Json j, ParseJson(text, "manifest"));
  NA_ASSIGN_OR_RETURN(std::string media_type, String(j, "mediaType", "manifest"));
  if (IsIndexMediaType(media_type)) return std::string("index");
  if (IsManifestMediaType(media_type)) return std::string("manifest");
  if (!media_type.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: media type \"", media_type, "\" is not supported"));
  }
  if (j.contains("manifests")) return std::string("index");
  if (j.contains("layers")) return std::string("manifest");
  return absl::InvalidArgumentError("manifest: neither an image manifest nor an index");
}

OciManifest ToOciMediaTypes(const OciManifest& manifest) {
  OciManifest out = manifest;
  out.media_type = std::string(kMediaTypeOciManifest);
  out.config.media_type = std::string(kMediaTypeOciConfig);
  for (Descriptor& layer : out.layers) {
    absl::StatusOr<LayerCompression> c = LayerCompressionOf(layer.media_type);
    if (c.ok()) layer.media_type = OciLayerMediaType(*c);
  }
  return out;
}

std::string SerializeManifest(const OciManifest& manifest) {
  Json j = Json::object();
  j["schemaVersion"] = 2;
  if (!manifest.media_type.empty()) j["mediaType"] = manifest.media_type;
  j["config"] = DescriptorToJson(manifest.config);
  Json layers = Json::array();
  for (const Descriptor& d : manifest.layers) layers.push_back(DescriptorToJson(d));
  j["layers"] = std::move(layers);
  if (!manifest.annotations.empty()) j["annotations"] = manifest.annotations;
  return Dump(j);
}

std::string SerializeIndex(const OciIndex& index) {
  Json j = Json::object();
  j["schemaVersion"] = 2;
  if (!index.media_type.empty()) j["mediaType"] = index.media_type;
  Json manifests = Json::array();
  for (const Descriptor& d : index.manifests) manifests.push_back(DescriptorToJson(d));
  j["manifests"] = std::move(manifests);
  if (!index.annotations.empty()) j["annotations"] = index.annotations;
  return Dump(j);
}

absl::StatusOr<Descriptor> SelectPlatform(const OciIndex& index, absl::string_view os,
                                          absl::string_view architecture) {
  std::vector<std::string> seen;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform) {
      if (index.manifests.size() == 1) return d;
      seen.push_back("(no platform)");
      continue;
    }
    if (d.platform->os == os && d.platform->architecture == architecture) return d;
    // Attestation manifests carry "unknown/unknown"; not worth listing.
    if (d.platform->os != "unknown") {
      seen.push_back(absl::StrCat(d.platform->os, "/", d.platform->architecture,
                                  d.platform->variant.empty() ? "" : "/", d.platform->variant));
    }
  }
  return absl::NotFoundError(
      absl::StrCat("image index has no manifest for ", os, "/", architecture,
                   " (it has: ", seen.empty() ? "none" : absl::StrJoin(seen, ", "), ")"));
}

absl::StatusOr<std::vector<DockerSaveImage>> ParseDockerSaveManifest(absl::string_view text) {
  constexpr absl::string_view kWhat = "docker-save manifest.json";
  if (TooDeep(text)) return absl::InvalidArgumentError(absl::StrCat(kWhat, ": nested too deep"));
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(kWhat, ": not valid JSON"));
  if (!j.is_array()) return absl::InvalidArgumentError(absl::StrCat(kWhat, ": not an array"));
  if (j.size() > kMaxEntries) return absl::InvalidArgumentError(absl::StrCat(kWhat, ": too big"));
  std::vector<DockerSaveImage> out;
  for (const Json& item : j) {
    if (!item.is_object()) return absl::InvalidArgumentError(absl::StrCat(kWhat, ": bad entry"));
    DockerSaveImage image;
    NA_ASSIGN_OR_RETURN(image.config, String(item, "Config", kWhat, true));
    NA_RETURN_IF_ERROR(CheckArchivePath(image.config, kWhat));
    for (const char* key : {"RepoTags", "Layers"}) {
      auto it = item.find(key);
      if (it == item.end() || it->is_null()) continue;
      if (!it->is_array()) return Bad(kWhat, key, "an array of strings");
      for (const Json& s : *it) {
        if (!s.is_string()) return Bad(kWhat, key, "an array of strings");
        std::string value = s.get<std::string>();
        if (std::string(key) == "Layers") {
          NA_RETURN_IF_ERROR(CheckArchivePath(value, kWhat));
          image.layers.push_back(std::move(value));
        } else {
          image.repo_tags.push_back(std::move(value));
        }
      }
    }
    out.push_back(std::move(image));
  }
  return out;
}

std::string SerializeDockerSaveManifest(const std::vector<DockerSaveImage>& images) {
  Json j = Json::array();
  for (const DockerSaveImage& image : images) {
    j.push_back(
        {{"Config", image.config}, {"RepoTags", image.repo_tags}, {"Layers", image.layers}});
  }
  return Dump(j);
}

absl::Status CheckOciLayout(absl::string_view text) {
  NA_ASSIGN_OR_RETURN(Json j, ParseJson(text, "oci-layout"));
  NA_ASSIGN_OR_RETURN(std::string version, String(j, "imageLayoutVersion", "oci-layout", true));
  if (!absl::StartsWith(version, "1.")) {
    return absl::InvalidArgumentError(
        absl::StrCat("oci-layout: imageLayoutVersion \"", version, "\" is not supported"));
  }
  return absl::OkStatus();
}

}  // namespace nodeagent::image
