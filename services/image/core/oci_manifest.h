#pragma once

// OCI image manifests and indexes (opencontainers/image-spec manifest.md, image-index.md),
// their Docker v2 schema 2 equivalents, the oci-layout file, and the manifest.json of a
// `docker save` archive. Parsers treat their input as hostile: every field is type-checked,
// digests are validated, nesting is bounded. Serialization is canonical (sorted keys, no
// whitespace), so one document always has one digest.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::image {

inline constexpr absl::string_view kMediaTypeOciManifest =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr absl::string_view kMediaTypeOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr absl::string_view kMediaTypeOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr absl::string_view kMediaTypeOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr absl::string_view kMediaTypeOciLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr absl::string_view kMediaTypeOciLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr absl::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr absl::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr absl::string_view kMediaTypeDockerConfig =
    "application/vnd.docker.container.image.v1+json";
inline constexpr absl::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

// Annotations this store reads and writes on index entries.
inline constexpr absl::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr absl::string_view kAnnotationContainerdName = "io.containerd.image.name";

// How a layer blob is compressed.
enum class LayerCompression { kNone, kGzip, kZstd };

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  bool operator==(const Platform&) const = default;
};

struct Descriptor {
  std::string media_type;
  // "sha256:<64 hex>" (validated by the parsers).
  std::string digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  bool operator==(const Descriptor&) const = default;
};

struct OciManifest {
  // As the document says (OCI or Docker); empty when the document leaves it out.
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
  bool operator==(const OciManifest&) const = default;
};

struct OciIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
  bool operator==(const OciIndex&) const = default;
};

// True for the media types of an image index / manifest list.
bool IsIndexMediaType(absl::string_view media_type);
// True for the media types of a single-image manifest.
bool IsManifestMediaType(absl::string_view media_type);

// The compression a layer media type says; INVALID_ARGUMENT for anything that is not a
// layer this store can unpack (foreign layers, unknown types).
absl::StatusOr<LayerCompression> LayerCompressionOf(absl::string_view media_type);
// The OCI layer media type of a compression.
std::string OciLayerMediaType(LayerCompression compression);

// Parses a manifest (OCI, or Docker v2 schema 2). Schema version must be 2; config and layer
// descriptors must have sha256 digests and non-negative sizes.
absl::StatusOr<OciManifest> ParseManifest(absl::string_view json);
// Parses an image index (OCI, or a Docker manifest list).
absl::StatusOr<OciIndex> ParseIndex(absl::string_view json);
// "manifest" or "index", from the mediaType field (or the presence of "manifests").
absl::StatusOr<std::string> ManifestKind(absl::string_view json);

// The same manifest with OCI media types (Docker ones converted), as a registry or umoci
// expects in an OCI layout.
OciManifest ToOciMediaTypes(const OciManifest& manifest);

std::string SerializeManifest(const OciManifest& manifest);
std::string SerializeIndex(const OciIndex& index);

// The entry of `index` for `os`/`architecture` (variant ignored unless given). A manifest
// without a platform matches when it is the only entry. NOT_FOUND names what is there.
absl::StatusOr<Descriptor> SelectPlatform(const OciIndex& index, absl::string_view os,
                                          absl::string_view architecture);

// One image of a `docker save` archive's manifest.json.
struct DockerSaveImage {
  // Paths inside the archive.
  std::string config;
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;
};
absl::StatusOr<std::vector<DockerSaveImage>> ParseDockerSaveManifest(absl::string_view json);
std::string SerializeDockerSaveManifest(const std::vector<DockerSaveImage>& images);

// {"imageLayoutVersion":"1.0.0"}; parse accepts any 1.x.
inline constexpr absl::string_view kOciLayoutFile = "{\"imageLayoutVersion\":\"1.0.0\"}";
absl::Status CheckOciLayout(absl::string_view json);

}  // namespace nodeagent::image
