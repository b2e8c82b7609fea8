#pragma once

// Unpacks the layers of an image archive while the archive itself still streams in.
//
// `nodectl load` sends an OCI or docker-save archive: a tar whose big files are the layer
// blobs. Which file is a layer is only known from the manifests, which may come last, so
// every big regular file is unpacked speculatively, by a few worker threads, as soon as its
// first bytes are on disk: a worker follows the file as the archive extraction writes it
// (pread up to what was written, then waits for more). When the archive is complete, the
// import looks up each layer's file here and, if the speculative unpack is valid, takes the
// unpacked directory instead of unpacking the blob again. Nothing here is trusted: the import
// checks the blob digest, size and diff id this unpack measured against the image, exactly as
// for a layer it unpacks itself, and a speculative result is given out only when the file on
// disk is provably the bytes that were unpacked:
//   - only regular-file entries without a hardlink are followed;
//   - a later entry with the same path, or any hardlink entry at all (which could give the file
//     a second name to write through), voids the speculation;
//   - at the end the path must still be the same inode, with one name and the size streamed.
// A void or failed speculation only costs time: the import unpacks that blob itself, and
// reports its errors.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/common/linux/unique_fd.h"
#include "services/image/core/host_ops.h"
#include "services/image/core/layer_unpack.h"

namespace nodeagent::image {

// A layer unpacked ahead of its import: the directory (below the store's tmp/, removed when
// this goes unless taken) and what the unpack measured.
class PreparedLayer {
 public:
  PreparedLayer(std::string dir, UnpackedLayer unpacked)
      : dir_(std::move(dir)), unpacked_(std::move(unpacked)) {}
  PreparedLayer(const PreparedLayer&) = delete;
  PreparedLayer& operator=(const PreparedLayer&) = delete;
  ~PreparedLayer();

  // True for the first caller only: it then owns the directory (moves or removes it).
  bool Claim();
  const std::string& dir() const { return dir_; }
  const UnpackedLayer& unpacked() const { return unpacked_; }

 private:
  const std::string dir_;
  const UnpackedLayer unpacked_;
  std::mutex mu_;
  bool claimed_ = false;
};

class LayerPrefetcher {
 public:
  // Speculative layer directories go to `tmp_dir`; `options` are the layer unpack options
  // (limits, device nodes); `workers` threads unpack at once.
  LayerPrefetcher(std::string tmp_dir, UnpackOptions options, size_t workers);
  LayerPrefetcher(const LayerPrefetcher&) = delete;
  LayerPrefetcher& operator=(const LayerPrefetcher&) = delete;
  // Stops and joins the workers; unpacked directories not taken are removed.
  ~LayerPrefetcher();

  // Hooks for UnpackOptions of the archive's extraction (called from that one thread).
  void OnEntryStart(const ExtractedEntry& entry);
  void OnEntryData(int64_t written);
  void OnEntryEnd();

  // The archive extraction ended: waits for the workers (which stop early when it failed).
  void Finish(bool archive_complete);

  // After Finish(true): the layer unpacked from the archive file at `relative` (a sanitized
  // path), or nullptr when there is none that may be used.
  std::shared_ptr<PreparedLayer> Take(const std::string& relative);

 private:
  struct Candidate {
    std::string relative;
    std::string path;
    int64_t size = 0;
    linux::UniqueFd fd;
    PathInfo identity;
    // Guarded by mu_.
    int64_t written = 0;
    bool complete = false;
    bool void_ = false;
    std::shared_ptr<PreparedLayer> prepared;
  };

  void Work();
  void Unpack(Candidate* candidate);
  // Blocks until bytes past `offset` are on disk (or the entry ended); false to stop.
  bool WaitFor(Candidate* candidate, int64_t offset, int64_t* available);

  const std::string tmp_dir_;
  const UnpackOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Candidate>> candidates_;
  std::deque<Candidate*> queue_;
  // The candidate being extracted now, if any.
  Candidate* current_ = nullptr;
  bool finished_ = false;
  bool failed_ = false;
  bool any_hardlink_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace nodeagent::image
