#pragma once

// Writes one content-addressed blob: bytes go to a temporary file while they are hashed, and
// only a blob whose sha256 is what was expected is published (renamed) as
// <blobs>/sha256/<hex>. A writer that is destroyed unpublished removes its temporary file,
// so a broken download or a digest mismatch keeps nothing.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/common/linux/unique_fd.h"
#include "services/image/core/digest.h"

namespace nodeagent::image {

class BlobWriter {
 public:
  // A temporary file in `tmp_dir` (which must be on the same filesystem as the blobs).
  static absl::StatusOr<BlobWriter> Create(const std::string& tmp_dir);

  BlobWriter(BlobWriter&&) noexcept;
  BlobWriter& operator=(BlobWriter&&) = delete;
  BlobWriter(const BlobWriter&) = delete;
  ~BlobWriter();

  absl::Status Write(absl::string_view data);
  // Writes without hashing, for a caller that hashes the bytes itself and publishes with
  // PublishHashed.
  absl::Status WriteUnhashed(absl::string_view data);
  // Drops everything written so far.
  absl::Status Reset();
  int64_t size() const { return size_; }
  // "sha256:<hex>" of what was written; ends hashing (call once, before Publish).
  const std::string& Finish();

  // Publishes the blob as <blobs_dir>/<hex> after checking its digest against `expected`
  // (when not empty): INVALID_ARGUMENT on a mismatch, and the file is removed. An existing
  // blob with that digest is kept and the temporary file removed.
  absl::StatusOr<std::string> Publish(const std::string& blobs_dir, absl::string_view expected);
  // Publish for bytes written with WriteUnhashed, whose digest the caller computed.
  absl::StatusOr<std::string> PublishHashed(const std::string& blobs_dir, absl::string_view digest,
                                            absl::string_view expected);

 private:
  BlobWriter(std::string path, linux::UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  linux::UniqueFd fd_;
  Sha256 hasher_;
  int64_t size_ = 0;
  std::string digest_;
  bool published_ = false;
};

}  // namespace nodeagent::image
