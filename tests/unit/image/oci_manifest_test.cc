// OCI manifests, indexes, docker-save manifests and registry references: parsing treats
// every document as hostile.

#include "services/image/core/oci_manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "services/image/core/digest.h"
#include "services/image/core/registry_client.h"

namespace nodeagent::image {
namespace {

using ::testing::HasSubstr;

const std::string kA = Sha256Digest(std::string(64, 'a'));
const std::string kB = Sha256Digest(std::string(64, 'b'));
const std::string kC = Sha256Digest(std::string(64, 'c'));

std::string Manifest(const std::string& media_type = std::string(kMediaTypeOciManifest)) {
  return absl::StrCat(
      R"({"schemaVersion":2,"mediaType":")", media_type,
      R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")", kA,
      R"(","size":7},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")",
      kB, R"(","size":100}]})");
}

TEST(OciManifestTest, ParsesOciManifest) {
  absl::StatusOr<OciManifest> m = ParseManifest(Manifest());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.digest, kA);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].digest, kB);
  EXPECT_EQ(m->layers[0].size, 100);
  // Canonical serialization parses back to the same document.
  absl::StatusOr<OciManifest> again = ParseManifest(SerializeManifest(*m));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *m);
}

TEST(OciManifestTest, ConvertsDockerMediaTypes) {
  std::string docker = Manifest(std::string(kMediaTypeDockerManifest));
  absl::StatusOr<OciManifest> m = ParseManifest(docker);
  ASSERT_TRUE(m.ok()) << m.status();
  m->layers[0].media_type = std::string(kMediaTypeDockerLayerGzip);
  OciManifest oci = ToOciMediaTypes(*m);
  EXPECT_EQ(oci.media_type, kMediaTypeOciManifest);
  EXPECT_EQ(oci.config.media_type, kMediaTypeOciConfig);
  EXPECT_EQ(oci.layers[0].media_type, kMediaTypeOciLayerGzip);
  EXPECT_EQ(oci.layers[0].digest, kB);
}

TEST(OciManifestTest, RejectsHostileManifests) {
  struct Case {
    std::string json;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"not json", "not valid JSON"},
      {"[]", "not an object"},
      {R"({"schemaVersion":1,"config":{},"layers":[]})", "schemaVersion"},
      {R"({"schemaVersion":2,"layers":[]})", "config"},
      {absl::StrCat(
           R"({"schemaVersion":2,"config":{"digest":"sha256:../../etc","size":1},"layers":[]})"),
       "not sha256"},
      {absl::StrCat(R"({"schemaVersion":2,"config":{"digest":")", kA,
                    R"(","size":-1},"layers":[]})"),
       "non-negative"},
      {absl::StrCat(R"({"schemaVersion":2,"config":{"digest":")", kA,
                    R"(","size":1},"layers":{}})"),
       "layers"},
      {absl::StrCat(R"({"schemaVersion":2,"mediaType":"text/plain","config":{"digest":")", kA,
                    R"(","size":1},"layers":[]})"),
       "not an image manifest"},
      {std::string(100, '[') + std::string(100, ']'), "nested deeper"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<OciManifest> m = ParseManifest(c.json);
    ASSERT_FALSE(m.ok()) << c.json;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr(c.error)) << c.json;
  }
}

TEST(OciManifestTest, IndexPicksPlatform) {
  std::string json = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")", kA,
      R"(","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")", kB,
      R"(","size":2,"platform":{"os":"linux","architecture":"amd64"}},)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")", kC,
      R"(","size":3,"platform":{"os":"unknown","architecture":"unknown"}}]})");
  absl::StatusOr<std::string> kind = ManifestKind(json);
  ASSERT_TRUE(kind.ok());
  EXPECT_EQ(*kind, "index");
  absl::StatusOr<OciIndex> index = ParseIndex(json);
  ASSERT_TRUE(index.ok()) << index.status();
  absl::StatusOr<Descriptor> amd64 = SelectPlatform(*index, "linux", "amd64");
  ASSERT_TRUE(amd64.ok());
  EXPECT_EQ(amd64->digest, kB);
  absl::StatusOr<Descriptor> s390x = SelectPlatform(*index, "linux", "s390x");
  ASSERT_FALSE(s390x.ok());
  EXPECT_EQ(s390x.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s390x.status().message(), HasSubstr("linux/arm64/v8, linux/amd64"));
}

TEST(OciManifestTest, LayerMediaTypes) {
  EXPECT_EQ(*LayerCompressionOf(kMediaTypeOciLayer), LayerCompression::kNone);
  EXPECT_EQ(*LayerCompressionOf(kMediaTypeDockerLayerGzip), LayerCompression::kGzip);
  EXPECT_EQ(*LayerCompressionOf(kMediaTypeOciLayerZstd), LayerCompression::kZstd);
  EXPECT_FALSE(
      LayerCompressionOf("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip").ok());
}

TEST(OciManifestTest, DockerSaveManifest) {
  absl::StatusOr<std::vector<DockerSaveImage>> ok = ParseDockerSaveManifest(
      R"([{"Config":"abc.json","RepoTags":["a:1"],"Layers":["x/layer.tar","y/layer.tar"]}])");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].layers.size(), 2u);
  EXPECT_EQ((*ok)[0].repo_tags[0], "a:1");
  for (const char* bad : {R"([{"Config":"../etc/passwd","Layers":[]}])",
                          R"([{"Config":"a.json","Layers":["/etc/shadow"]}])",
                          R"([{"Config":"a.json","Layers":["x/../../y"]}])", R"([{"Layers":[]}])",
                          R"({"Config":"a"})", R"([{"Config":5}])"}) {
    EXPECT_FALSE(ParseDockerSaveManifest(bad).ok()) << bad;
  }
}

TEST(OciManifestTest, OciLayoutVersion) {
  EXPECT_TRUE(CheckOciLayout(kOciLayoutFile).ok());
  EXPECT_FALSE(CheckOciLayout(R"({"imageLayoutVersion":"2.0.0"})").ok());
  EXPECT_FALSE(CheckOciLayout("{}").ok());
}

TEST(RegistryReferenceTest, Parses) {
  absl::StatusOr<RegistryReference> r = ParseRegistryReference("127.0.0.1:5000/a/b:v1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "a/b");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_EQ(r->Name(), "127.0.0.1:5000/a/b:v1");

  r = ParseRegistryReference("localhost/busybox");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->ManifestReference(), "latest");

  r = ParseRegistryReference(absl::StrCat("registry.example:443/x@", kA));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->digest, kA);
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->ManifestReference(), kA);
}

TEST(RegistryReferenceTest, Rejects) {
  for (const char* bad : {"busybox", "library/busybox", "127.0.0.1:5000/UPPER",
                          "host.x/a@sha256:12", "host.x/a:bad tag", ""}) {
    EXPECT_FALSE(ParseRegistryReference(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace nodeagent::image
