#include "services/image/core/layer_prefetch.h"

#include <fcntl.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"

namespace nodeagent::image {
namespace {

// Smaller files are manifests, configs and tiny layers: not worth a speculative unpack.
constexpr int64_t kMinLayerBytes = 64 << 10;
// Bounds the open files (one per followed entry) a hostile archive can make us hold.
constexpr size_t kMaxCandidates = 256;
constexpr size_t kReadBytes = 1 << 20;

void RemoveDir(const std::string& dir) {
  if (absl::Status s = linux::RemoveTree(dir); !s.ok() && !absl::IsNotFound(s)) {
    LogWarning("remove \"%s\": %s", dir, s.message());
  }
}

}  // namespace

PreparedLayer::~PreparedLayer() {
  if (!claimed_) RemoveDir(dir_);
}

bool PreparedLayer::Claim() {
  std::lock_guard<std::mutex> lock(mu_);
  if (claimed_) return false;
  claimed_ = true;
  return true;
}

LayerPrefetcher::LayerPrefetcher(std::string tmp_dir, UnpackOptions options, size_t workers)
    : tmp_dir_(std::move(tmp_dir)), options_(std::move(options)) {
  for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
}

LayerPrefetcher::~LayerPrefetcher() { Finish(false); }

void LayerPrefetcher::OnEntryStart(const ExtractedEntry& entry) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = nullptr;
    bool voided = false;
    for (const std::unique_ptr<Candidate>& c : candidates_) {
      // A hardlink could give a followed file a second name that a later entry writes
      // through; a same-named entry replaces (or rewrites) it.
      if (!c->void_ && (entry.hardlink || c->relative == entry.relative)) {
        c->void_ = true;
        voided = true;
      }
    }
    if (entry.hardlink) any_hardlink_ = true;
    if (voided) cv_.notify_all();
    if (finished_ || any_hardlink_ || candidates_.size() >= kMaxCandidates) return;
  }
  if ((entry.type & S_IFMT) != S_IFREG || entry.hardlink || entry.size < kMinLayerBytes) return;
  absl::StatusOr<linux::UniqueFd> fd =
      linux::OpenFile(entry.host_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (!fd.ok()) return;
  absl::StatusOr<PathInfo> identity = StatFd(fd->get());
  if (!identity.ok() || !S_ISREG(identity->mode) || identity->links != 1) return;
  auto candidate = std::make_unique<Candidate>();
  candidate->relative = entry.relative;
  candidate->path = entry.host_path;
  candidate->size = entry.size;
  candidate->fd = *std::move(fd);
  candidate->identity = *identity;
  std::lock_guard<std::mutex> lock(mu_);
  current_ = candidate.get();
  queue_.push_back(candidate.get());
  candidates_.push_back(std::move(candidate));
  cv_.notify_all();
}

void LayerPrefetcher::OnEntryData(int64_t written) {
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ == nullptr) return;
  current_->written = std::max(current_->written, written);
  cv_.notify_all();
}

void LayerPrefetcher::OnEntryEnd() {
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ == nullptr) return;
  current_->complete = true;
  current_->written = current_->size;
  current_ = nullptr;
  cv_.notify_all();
}

void LayerPrefetcher::Finish(bool archive_complete) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!finished_) {
      finished_ = true;
      failed_ = !archive_complete;
    }
    current_ = nullptr;
    cv_.notify_all();
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::shared_ptr<PreparedLayer> LayerPrefetcher::Take(const std::string& relative) {
  Candidate* found = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!finished_ || failed_ || any_hardlink_) return nullptr;
    for (const std::unique_ptr<Candidate>& c : candidates_) {
      if (c->relative == relative) found = c.get();
    }
    if (found == nullptr || found->void_ || !found->complete || found->prepared == nullptr) {
      return nullptr;
    }
  }
  // The path must still be the file that was followed, whole and with no other name.
  absl::StatusOr<PathInfo> now = LStat(found->path);
  if (!now.ok() || !S_ISREG(now->mode) || now->dev != found->identity.dev ||
      now->ino != found->identity.ino || now->links != 1 || now->size != found->size) {
    return nullptr;
  }
  return found->prepared;
}

void LayerPrefetcher::Work() {
  while (true) {
    Candidate* candidate = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return failed_ || !queue_.empty() || finished_; });
      if (failed_ || queue_.empty()) return;
      candidate = queue_.front();
      queue_.pop_front();
    }
    Unpack(candidate);
  }
}

bool LayerPrefetcher::WaitFor(Candidate* candidate, int64_t offset, int64_t* available) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    return candidate->void_ || failed_ || candidate->complete || candidate->written > offset ||
           (finished_ && !candidate->complete);
  });
  if (candidate->void_ || failed_ || (!candidate->complete && finished_)) return false;
  *available = candidate->written;
  return true;
}

void LayerPrefetcher::Unpack(Candidate* candidate) {
  absl::StatusOr<std::string> dir = MakeTempDir(tmp_dir_, "layer-");
  if (!dir.ok()) return;
  if (!ChangeMode(*dir, 0755).ok()) {
    RemoveDir(*dir);
    return;
  }
  std::string buffer(kReadBytes, '\0');
  int64_t offset = 0;
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    int64_t available = 0;
    if (!WaitFor(candidate, offset, &available)) {
      return absl::AbortedError("speculative unpack stopped");
    }
    if (available <= offset) return absl::string_view();
    size_t want = static_cast<size_t>(std::min<int64_t>(available - offset, kReadBytes));
    NA_ASSIGN_OR_RETURN(size_t n, ReadAt(candidate->fd.get(), buffer.data(), want, offset));
    if (n == 0) return absl::DataLossError("file shorter than what was written");
    offset += static_cast<int64_t>(n);
    return absl::string_view(buffer.data(), n);
  };
  UnpackOptions options = options_;
  options.hash_input = true;
  options.compute_diff_id = true;
  options.blob_sink = nullptr;
  // A blob that would be kept decompressed (bzip2, xz) is left to the import.
  options.blob_reset = [] { return absl::AbortedError("blob kept decompressed"); };
  options.on_entry_start = nullptr;
  options.on_entry_data = nullptr;
  options.on_entry_end = nullptr;
  absl::StatusOr<UnpackedLayer> unpacked = UnpackLayer(source, *dir, options);
  if (!unpacked.ok() || offset != candidate->size || unpacked->input_bytes != candidate->size) {
    RemoveDir(*dir);
    return;
  }
  LogDebug("\"%s\": unpacked ahead (%d entries, %d bytes of tar)", candidate->relative,
           unpacked->entries, unpacked->tar_bytes);
  auto prepared = std::make_shared<PreparedLayer>(*dir, *std::move(unpacked));
  std::lock_guard<std::mutex> lock(mu_);
  candidate->prepared = std::move(prepared);
}

}  // namespace nodeagent::image
