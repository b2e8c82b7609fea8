// The gRPC adapter, served for real on a Unix socket in this process: codes and messages
// as a client sees them.

#include "services/image/grpc/image_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "services/common/grpc/service_host.h"
#include "services/image/core/digest.h"
#include "services/image/core/image_store.h"
#include "services/image/core/oci_config.h"
#include "services/image/core/oci_manifest.h"
#include "tests/integration/image/test_util.h"

namespace nodeagent::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScopedTempDir;
using testing::TarBuilder;

class ImageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "integration tests run as root";
    absl::StatusOr<std::unique_ptr<ImageStore>> store =
        ImageStore::Open({.root = tmp_.path() + "/store"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    service_ = std::make_unique<ImageServiceImpl>(store_.get());
    absl::StatusOr<std::unique_ptr<ServiceHost>> host =
        ServiceHost::Start({"image", tmp_.path() + "/run", ""}, {service_.get()});
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
    stub_ = v1::ImageService::NewStub(DialUnixSocket(host_->socket_path()));
  }

  void TearDown() override {
    if (host_) host_->Shutdown();
  }

  // Every call has a deadline.
  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return context;
  }

  grpc::Status Import(const std::string& name, const std::string& tar, v1::Image* image,
                      bool send_metadata = true) {
    auto context = Context();
    v1::ImportImageResponse response;
    auto writer = stub_->ImportImage(context.get(), &response);
    v1::ImportImageRequest request;
    if (send_metadata) {
      request.mutable_metadata()->set_name(name);
      request.mutable_metadata()->mutable_config()->add_cmd("/bin/app");
      writer->Write(request);
    }
    for (size_t offset = 0; offset < tar.size(); offset += 3000) {
      request.set_chunk(tar.substr(offset, 3000));
      if (!writer->Write(request)) break;
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (image != nullptr) *image = response.image();
    return status;
  }

  ScopedTempDir tmp_{"nodeagent-image-svc-test"};
  std::unique_ptr<ImageStore> store_;
  std::unique_ptr<ImageServiceImpl> service_;
  std::unique_ptr<ServiceHost> host_;
  std::unique_ptr<v1::ImageService::Stub> stub_;
};

TEST_F(ImageServiceTest, ImportListGetAndSnapshots) {
  const std::string plain = TarBuilder().File("etc/motd", "hi\n").Finish();
  const std::string gz = TarBuilder(testing::Compression::kGzip).File("etc/motd", "hi\n").Finish();
  v1::Image imported;
  grpc::Status status = Import("app:v1", gz, &imported);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(imported.names(), ElementsAre("app:v1"));
  EXPECT_THAT(imported.layers(), ElementsAre("sha256:" + Sha256Hex(plain)));
  EXPECT_THAT(imported.config().cmd(), ElementsAre("/bin/app"));
  EXPECT_GT(imported.size_bytes(), 0);
  EXPECT_GT(imported.created_unix(), 0);

  v1::ListImagesResponse list;
  ASSERT_TRUE(stub_->ListImages(Context().get(), {}, &list).ok());
  ASSERT_EQ(list.images_size(), 1);
  EXPECT_EQ(list.images(0).id(), imported.id());

  v1::GetImageRequest get;
  get.set_ref(imported.id().substr(7, 12));
  v1::GetImageResponse got;
  ASSERT_TRUE(stub_->GetImage(Context().get(), get, &got).ok());
  EXPECT_EQ(got.image().id(), imported.id());

  v1::PrepareSnapshotRequest prepare;
  prepare.set_key("c1");
  prepare.set_image("app:v1");
  v1::PrepareSnapshotResponse prepared;
  status = stub_->PrepareSnapshot(Context().get(), prepare, &prepared);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(prepared.mounts_size(), 1);
  EXPECT_EQ(prepared.mounts(0).type(), "overlay");
  EXPECT_EQ(prepared.mounts(0).options_size(), 3);
  EXPECT_EQ(prepared.image().id(), imported.id());
  EXPECT_EQ(prepared.upper_dir(), store_->SnapshotDir("c1") + "/upper");

  status = stub_->PrepareSnapshot(Context().get(), prepare, &prepared);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  v1::ListSnapshotsResponse snapshots;
  ASSERT_TRUE(stub_->ListSnapshots(Context().get(), {}, &snapshots).ok());
  ASSERT_EQ(snapshots.snapshots_size(), 1);
  EXPECT_EQ(snapshots.snapshots(0).key(), "c1");
  EXPECT_EQ(snapshots.snapshots(0).image_id(), imported.id());

  v1::RemoveSnapshotRequest remove;
  remove.set_key("c1");
  v1::RemoveSnapshotResponse removed;
  ASSERT_TRUE(stub_->RemoveSnapshot(Context().get(), remove, &removed).ok());
  ASSERT_TRUE(stub_->RemoveSnapshot(Context().get(), remove, &removed).ok()) << "idempotent";
  ASSERT_TRUE(stub_->ListSnapshots(Context().get(), {}, &snapshots).ok());
  EXPECT_EQ(snapshots.snapshots_size(), 0);
}

TEST_F(ImageServiceTest, UnknownImageIsNotFound) {
  v1::GetImageRequest get;
  get.set_ref("nope");
  v1::GetImageResponse got;
  grpc::Status status = stub_->GetImage(Context().get(), get, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "image \"nope\": not found");

  v1::PrepareSnapshotRequest prepare;
  prepare.set_key("c1");
  prepare.set_image("nope:v2");
  v1::PrepareSnapshotResponse prepared;
  status = stub_->PrepareSnapshot(Context().get(), prepare, &prepared);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "image \"nope:v2\": not found");
}

TEST_F(ImageServiceTest, BadSnapshotKeyIsInvalidArgument) {
  v1::PrepareSnapshotRequest prepare;
  prepare.set_key("a/b");
  prepare.set_image("busybox");
  v1::PrepareSnapshotResponse prepared;
  grpc::Status status = stub_->PrepareSnapshot(Context().get(), prepare, &prepared);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("snapshot key \"a/b\""));

  v1::RemoveSnapshotRequest remove;
  v1::RemoveSnapshotResponse removed;
  status = stub_->RemoveSnapshot(Context().get(), remove, &removed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ImageServiceTest, ImportErrors) {
  grpc::Status status = Import("x", TarBuilder().File("f", "x").Finish(), nullptr, false);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("first message must carry the metadata"));

  status = Import("evil", TarBuilder().File("../x", "x").Finish(), nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "import \"evil:latest\": entry \"../x\": path escapes the layer");

  status = Import("Upper", TarBuilder().File("f", "x").Finish(), nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("must be lowercase"));

  v1::ListImagesResponse list;
  ASSERT_TRUE(stub_->ListImages(Context().get(), {}, &list).ok());
  EXPECT_EQ(list.images_size(), 0);
}

TEST_F(ImageServiceTest, ErrorsOfTheImageStoreRpcsMapToGrpcCodes) {
  // A reference without a registry host: nothing is contacted.
  v1::PullImageRequest pull;
  pull.set_ref("alpine");
  auto context = Context();
  auto reader = stub_->PullImage(context.get(), pull);
  v1::PullImageResponse progress;
  EXPECT_FALSE(reader->Read(&progress));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("name the registry"));

  // A registry on loopback that is not there: UNAVAILABLE, naming the URL.
  pull.set_ref("127.0.0.1:1/nothing:v1");
  pull.mutable_access()->set_plain_http(true);
  auto context2 = Context();
  auto reader2 = stub_->PullImage(context2.get(), pull);
  EXPECT_FALSE(reader2->Read(&progress));
  status = reader2->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("http://127.0.0.1:1/v2/nothing/manifests/v1"));

  v1::TagImageRequest tag;
  tag.set_source("no-such-image");
  tag.set_target("x:1");
  v1::TagImageResponse tagged;
  status = stub_->TagImage(Context().get(), tag, &tagged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  v1::RemoveImageRequest rmi;
  rmi.set_ref("no-such-image");
  v1::RemoveImageResponse removed;
  EXPECT_EQ(stub_->RemoveImage(Context().get(), rmi, &removed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::CommitSnapshotRequest commit;
  commit.set_key("no-such-snapshot");
  v1::CommitSnapshotResponse committed;
  EXPECT_EQ(stub_->CommitSnapshot(Context().get(), commit, &committed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::SaveImageRequest save;
  auto context3 = Context();
  auto saver = stub_->SaveImage(context3.get(), save);
  v1::SaveImageResponse chunk;
  EXPECT_FALSE(saver->Read(&chunk));
  EXPECT_EQ(saver->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::LoadImageResponse loaded;
  auto context4 = Context();
  auto loader = stub_->LoadImage(context4.get(), &loaded);
  v1::LoadImageRequest garbage;
  garbage.set_chunk(std::string(4096, 'x'));
  loader->Write(garbage);
  loader->WritesDone();
  status = loader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("load archive"));
}

TEST_F(ImageServiceTest, ASnapshotWhoseCallerGaveUpDuringTheUnpackIsRemoved) {
  // An image kept as blobs whose unpack (5000 files) outlasts the caller's deadline.
  TarBuilder many(testing::Compression::kGzip);
  for (int i = 0; i < 5000; ++i) many.File(absl::StrCat("f", i), "x");
  const std::string gzip = many.Finish();
  OciImageConfig config;
  config.architecture = std::string(HostOciArchitecture());
  config.diff_ids = {Sha256Digest(Sha256Hex(testing::Inflate(gzip)))};
  ImageImportSpec spec;
  spec.names = {"slow:1"};
  spec.unpack = false;
  spec.config_bytes = SerializeOciConfig(config);
  spec.layers.push_back(
      {{std::string(kMediaTypeOciLayerGzip),
        Sha256Digest(Sha256Hex(gzip)),
        static_cast<int64_t>(gzip.size()),
        {},
        std::nullopt},
       [&gzip]() -> absl::StatusOr<ByteSource> { return testing::SourceOf(gzip); },
       "",
       nullptr});
  ASSERT_TRUE(store_->ImportImage(spec).ok());

  grpc::ClientContext context;
  // Long enough for the call to reach the service, far shorter than the unpack.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(30));
  v1::PrepareSnapshotRequest request;
  request.set_key("gave-up");
  request.set_image("slow:1");
  v1::PrepareSnapshotResponse response;
  grpc::Status status = stub_->PrepareSnapshot(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  // Shutdown waits for the handler, which finishes the unpack and then sees the cancel.
  host_->Shutdown();
  EXPECT_TRUE(store_->ListSnapshots().empty());
  EXPECT_EQ(testing::CountEntries(tmp_.path() + "/store/snapshots"), 0u);
  absl::StatusOr<Image> image = store_->GetImage("slow:1");
  ASSERT_TRUE(image.ok());
  if (!image->unpacked) GTEST_SKIP() << "the deadline passed before the service got the call";
  // The unpack itself is kept for the next container.
}

}  // namespace
}  // namespace nodeagent::image
