#include "services/image/core/blob_store.h"

#include <fcntl.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/host_ops.h"

namespace nodeagent::image {

absl::StatusOr<BlobWriter> BlobWriter::Create(const std::string& tmp_dir) {
  static std::atomic<uint64_t> counter{0};
  std::string path =
      absl::StrCat(tmp_dir, "/blob-", absl::ToUnixNanos(absl::Now()), "-", counter.fetch_add(1));
  NA_ASSIGN_OR_RETURN(linux::UniqueFd fd,
                      linux::OpenFile(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  return BlobWriter(std::move(path), std::move(fd));
}

BlobWriter::BlobWriter(BlobWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::move(other.fd_)),
      hasher_(std::move(other.hasher_)),
      size_(other.size_),
      digest_(std::move(other.digest_)),
      published_(other.published_) {
  other.published_ = true;  // The moved-from writer owns no file.
}

BlobWriter::~BlobWriter() {
  if (published_ || path_.empty()) return;
  fd_ = linux::UniqueFd();
  RemoveTreeOrWarn(path_);
}

absl::Status BlobWriter::Write(absl::string_view data) {
  hasher_.Update(data);
  size_ += static_cast<int64_t>(data.size());
  return Annotate(linux::WriteAll(fd_.get(), data), absl::StrCat("write \"", path_, "\""));
}

absl::Status BlobWriter::WriteUnhashed(absl::string_view data) {
  size_ += static_cast<int64_t>(data.size());
  return Annotate(linux::WriteAll(fd_.get(), data), absl::StrCat("write \"", path_, "\""));
}

absl::StatusOr<std::string> BlobWriter::PublishHashed(const std::string& blobs_dir,
                                                      absl::string_view digest,
                                                      absl::string_view expected) {
  digest_ = std::string(digest);
  return Publish(blobs_dir, expected);
}

absl::Status BlobWriter::Reset() {
  NA_ASSIGN_OR_RETURN(fd_, linux::OpenFile(path_, O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
  hasher_ = Sha256();
  size_ = 0;
  return absl::OkStatus();
}

const std::string& BlobWriter::Finish() {
  if (digest_.empty()) digest_ = Sha256Digest(hasher_.FinishHex());
  return digest_;
}

absl::StatusOr<std::string> BlobWriter::Publish(const std::string& blobs_dir,
                                                absl::string_view expected) {
  const std::string& digest = Finish();
  if (!expected.empty() && expected != digest) {
    return absl::InvalidArgumentError(absl::StrCat("blob digest mismatch: expected ", expected,
                                                   ", got ", digest, " (", size_, " bytes)"));
  }
  fd_ = linux::UniqueFd();
  NA_ASSIGN_OR_RETURN(std::string hex, ParseSha256Digest(digest));
  absl::Status renamed = RenameNoReplace(path_, absl::StrCat(blobs_dir, "/", hex));
  if (absl::IsAlreadyExists(renamed)) {
    linux::RemoveTree(path_).IgnoreError();
  } else if (!renamed.ok()) {
    return renamed;
  }
  published_ = true;
  return digest;
}

}  // namespace nodeagent::image
