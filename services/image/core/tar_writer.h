#pragma once

// Writes a tar stream (pax, numeric owners, optionally gzip or zstd) to a sink: entries read
// from disk (hardlinks detected, overlay xattrs left out) or made from bytes in memory.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/image/core/fs_changes.h"
#include "services/image/core/oci_manifest.h"
#include "services/image/core/store_index.h"

struct archive;
struct archive_entry;
struct archive_entry_linkresolver;

namespace nodeagent::image {

class TarWriter {
 public:
  TarWriter() = default;
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  ~TarWriter();

  // `sink` must outlive the writer.
  absl::Status Open(LayerCompression compression, const ByteSink* sink);
  // Adds `path` on disk as `name` (a directory adds no children). With `owners`, its owner
  // is mapped back from a user namespace's host ids.
  absl::Status AddFromDisk(const std::string& path, const std::string& name,
                           const OwnerMap* owners = nullptr);
  // An empty regular file (whiteouts and opaque markers).
  absl::Status AddMarker(const std::string& name);
  // A regular file with `data`, mode 0644, owned by root.
  absl::Status AddBytes(const std::string& name, absl::string_view data);
  // Writes the end-of-archive blocks and flushes.
  absl::Status Close();

 private:
  static long WriteCallback(archive* a, void* opaque, const void* buffer, size_t length);
  static void DropOverlayXattrs(archive_entry* entry);
  absl::Status CopyData(const std::string& path, const std::string& name);
  absl::Status Error(absl::string_view what);

  const ByteSink* sink_ = nullptr;
  absl::Status sink_error_;
  archive* out_ = nullptr;
  archive* disk_ = nullptr;
  archive_entry_linkresolver* resolver_ = nullptr;
  std::string buffer_;
};

}  // namespace nodeagent::image
