#include "services/image/core/store_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/image/core/digest.h"

namespace nodeagent::image {
namespace {

using ::testing::HasSubstr;

const std::string kLayerA = Sha256Digest(std::string(64, 'a'));
const std::string kLayerB = Sha256Digest(std::string(64, 'b'));
const std::string kImage1 = Sha256Digest(std::string(64, '1'));
const std::string kImage2 = Sha256Digest(std::string(64, '2'));

StoreIndex Sample() {
  StoreIndex index;
  index.layers[kLayerA] = LayerRecord{4096, "aaaaaaaaaaaaaaaa"};
  index.layers[kLayerB] = LayerRecord{8192, "bbbbbbbbbbbbbbbb"};
  index.images[kImage1] =
      ImageRecord{{"busybox:latest", "sh:1"}, absl::FromUnixSeconds(1000), {kLayerA}, 4096, ""};
  // With a manifest digest (kLayerB's digest stands in for one).
  index.images[kImage2] =
      ImageRecord{{}, absl::FromUnixSeconds(2000), {kLayerA, kLayerB}, 12288, kLayerB};
  return index;
}

TEST(StoreIndexTest, RoundTrip) {
  absl::StatusOr<StoreIndex> parsed = ParseStoreIndex(SerializeStoreIndex(Sample()));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, Sample());
}

TEST(StoreIndexTest, EmptyRoundTrip) {
  EXPECT_EQ(*ParseStoreIndex(SerializeStoreIndex(StoreIndex{})), StoreIndex{});
}

TEST(StoreIndexTest, RejectsInconsistentIndex) {
  // A layer without a record is one kept as its blob only (unpacked on first use) ...
  StoreIndex blob_only_layer = Sample();
  blob_only_layer.layers.erase(kLayerB);
  EXPECT_TRUE(ParseStoreIndex(SerializeStoreIndex(blob_only_layer)).ok());
  // ... but it still has to be a diff id.
  StoreIndex bad_layer = Sample();
  bad_layer.images[kImage2].layers.push_back("sha256:zz");
  EXPECT_THAT(ParseStoreIndex(SerializeStoreIndex(bad_layer)).status().message(),
              HasSubstr("a layer is not a sha256 digest"));

  StoreIndex duplicate_name = Sample();
  duplicate_name.images[kImage2].names.insert("busybox:latest");
  EXPECT_THAT(ParseStoreIndex(SerializeStoreIndex(duplicate_name)).status().message(),
              HasSubstr("\"busybox:latest\" is on two images"));

  StoreIndex bad_id = Sample();
  bad_id.images["sha256:zz"] = ImageRecord{};
  EXPECT_EQ(ParseStoreIndex(SerializeStoreIndex(bad_id)).status().code(),
            absl::StatusCode::kInvalidArgument);

  StoreIndex bad_link = Sample();
  bad_link.layers[kLayerA].link = "../../etc";
  EXPECT_THAT(ParseStoreIndex(SerializeStoreIndex(bad_link)).status().message(),
              HasSubstr("no link"));
}

TEST(StoreIndexTest, RejectsGarbage) {
  for (const char* text : {"", "null", "[]", "{}", R"({"version": 2, "images": {}, "layers": {}})",
                           R"({"version": 1, "images": [], "layers": {}})"}) {
    EXPECT_EQ(ParseStoreIndex(text).status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(SnapshotRecordTest, RoundTrip) {
  SnapshotRecord record{kImage1, absl::FromUnixSeconds(1234) + absl::Milliseconds(5)};
  EXPECT_EQ(*ParseSnapshotRecord(SerializeSnapshotRecord(record)), record);
  EXPECT_FALSE(ParseSnapshotRecord(R"({"image_id": "x", "created": "1970-01-01T00:00:00Z"})").ok());
  EXPECT_FALSE(ParseSnapshotRecord("{").ok());
}

TEST(SnapshotRecordTest, OwnerMapsRoundTripAndMapHostIdsBack) {
  SnapshotRecord record{kImage1, absl::FromUnixSeconds(1234), {}};
  record.owners.uids = {{0, 100000, 65536}};
  record.owners.gids = {{0, 200000, 1000}, {1000, 300000, 10}};
  absl::StatusOr<SnapshotRecord> parsed = ParseSnapshotRecord(SerializeSnapshotRecord(record));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, record);
  EXPECT_EQ(record.owners.Uid(100000), 0u);
  EXPECT_EQ(record.owners.Uid(101000), 1000u);
  EXPECT_EQ(record.owners.Uid(0), 65534u);       // Outside the map: nobody, as inside.
  EXPECT_EQ(record.owners.Uid(165536), 65534u);  // One past the range.
  EXPECT_EQ(record.owners.Gid(300005), 1005u);
  EXPECT_EQ(OwnerMap{}.Uid(100000), 100000u);  // No map: ids as they are.
  EXPECT_FALSE(ParseSnapshotRecord(absl::StrCat(R"({"image_id": ")", kImage1,
                                                R"(", "created": "1970-01-01T00:00:00Z",
                                                "uid_map": [[0, 1]]})"))
                   .ok());
}

}  // namespace
}  // namespace nodeagent::image
