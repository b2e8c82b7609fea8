#include "services/image/core/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>

#include <fstream>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/status_macros.h"

namespace nodeagent::image {
namespace {

constexpr size_t kCopyBuffer = 1 << 20;

std::string ArchiveError(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown libarchive error";
}

}  // namespace

TarWriter::~TarWriter() {
  if (resolver_ != nullptr) archive_entry_linkresolver_free(resolver_);
  if (disk_ != nullptr) archive_read_free(disk_);
  if (out_ != nullptr) archive_write_free(out_);
}

absl::Status TarWriter::Open(LayerCompression compression, const ByteSink* sink) {
  sink_ = sink;
  out_ = archive_write_new();
  disk_ = archive_read_disk_new();
  resolver_ = archive_entry_linkresolver_new();
  if (out_ == nullptr || disk_ == nullptr || resolver_ == nullptr) {
    return absl::ResourceExhaustedError("libarchive: out of memory");
  }
  archive_entry_linkresolver_set_strategy(resolver_, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
  // Numeric owners only, no ACLs or file flags; symlinks are archived as symlinks.
  archive_read_disk_set_symlink_physical(disk_);
  archive_read_disk_set_behavior(disk_, ARCHIVE_READDISK_NO_ACL | ARCHIVE_READDISK_NO_FFLAGS);
  if (archive_write_set_format_pax_restricted(out_) != ARCHIVE_OK) {
    return absl::InternalError(ArchiveError(out_));
  }
  int r = ARCHIVE_OK;
  if (compression == LayerCompression::kGzip) {
    r = archive_write_add_filter_gzip(out_);
    // Speed over size: layers made by commit are written once and read rarely.
    if (r == ARCHIVE_OK) archive_write_set_filter_option(out_, "gzip", "compression-level", "1");
  } else if (compression == LayerCompression::kZstd) {
    r = archive_write_add_filter_zstd(out_);
  }
  if (r != ARCHIVE_OK) return absl::InternalError(ArchiveError(out_));
  archive_write_set_bytes_in_last_block(out_, 1);
  if (archive_write_open(out_, this, nullptr, &TarWriter::WriteCallback, nullptr) != ARCHIVE_OK) {
    return Error("open tar stream");
  }
  return absl::OkStatus();
}

// Adds `path` on disk as `name` in the archive (a directory adds no children).
absl::Status TarWriter::AddFromDisk(const std::string& path, const std::string& name,
                                    const OwnerMap* owners) {
  archive_entry* entry = archive_entry_new();
  if (entry == nullptr) return absl::ResourceExhaustedError("libarchive: out of memory");
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> owned(entry, archive_entry_free);
  archive_entry_copy_sourcepath(entry, path.c_str());
  archive_entry_copy_pathname(entry, name.c_str());
  if (archive_read_disk_entry_from_file(disk_, entry, -1, nullptr) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("read \"", path, "\": ", ArchiveError(disk_)));
  }
  DropOverlayXattrs(entry);
  if (owners != nullptr && !owners->empty()) {
    archive_entry_set_uid(entry, owners->Uid(static_cast<uint32_t>(archive_entry_uid(entry))));
    archive_entry_set_gid(entry, owners->Gid(static_cast<uint32_t>(archive_entry_gid(entry))));
  }
  archive_entry_set_uname(entry, nullptr);
  archive_entry_set_gname(entry, nullptr);
  archive_entry* spare = nullptr;
  archive_entry_linkify(resolver_, &entry, &spare);
  if (spare != nullptr) archive_entry_free(spare);
  if (entry == nullptr) return absl::OkStatus();
  // linkify may hand back another entry object; ownership stays with `owned` only when
  // it is the same one.
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> written(
      entry == owned.get() ? owned.release() : entry, archive_entry_free);
  if (archive_write_header(out_, written.get()) < ARCHIVE_OK) {
    return Error(absl::StrCat("write entry \"", name, "\""));
  }
  if (archive_entry_filetype(written.get()) == AE_IFREG && archive_entry_size(written.get()) > 0 &&
      archive_entry_hardlink(written.get()) == nullptr) {
    NA_RETURN_IF_ERROR(CopyData(path, name));
  }
  return absl::OkStatus();
}

// An empty regular file (whiteouts and opaque markers).
absl::Status TarWriter::AddMarker(const std::string& name) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                 archive_entry_free);
  archive_entry_copy_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), 0644);
  archive_entry_set_size(entry.get(), 0);
  if (archive_write_header(out_, entry.get()) < ARCHIVE_OK) {
    return Error(absl::StrCat("write entry \"", name, "\""));
  }
  return absl::OkStatus();
}

absl::Status TarWriter::Close() {
  if (archive_write_close(out_) != ARCHIVE_OK) return Error("finish tar stream");
  return absl::OkStatus();
}

long TarWriter::WriteCallback(archive* a, void* opaque, const void* buffer, size_t length) {
  auto* self = static_cast<TarWriter*>(opaque);
  absl::Status s = (*self->sink_)(absl::string_view(static_cast<const char*>(buffer), length));
  if (!s.ok()) {
    self->sink_error_ = s;
    archive_set_error(a, EIO, "sink failed");
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

void TarWriter::DropOverlayXattrs(archive_entry* entry) {
  if (archive_entry_xattr_count(entry) == 0) return;
  std::vector<std::pair<std::string, std::string>> kept;
  archive_entry_xattr_reset(entry);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
    if (absl::StartsWith(name, "trusted.overlay.") || absl::StartsWith(name, "user.overlay.")) {
      continue;
    }
    kept.emplace_back(name, std::string(static_cast<const char*>(value), size));
  }
  archive_entry_xattr_clear(entry);
  for (const auto& [n, v] : kept)
    archive_entry_xattr_add_entry(entry, n.c_str(), v.data(), v.size());
}

absl::Status TarWriter::CopyData(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("open \"", path, "\" for reading"));
  buffer_.resize(kCopyBuffer);
  while (in) {
    in.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    if (archive_write_data(out_, buffer_.data(), static_cast<size_t>(n)) < 0) {
      return Error(absl::StrCat("write data of \"", name, "\""));
    }
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("read \"", path, "\""));
  return absl::OkStatus();
}

absl::Status TarWriter::Error(absl::string_view what) {
  if (!sink_error_.ok()) return Annotate(sink_error_, what);
  return absl::InternalError(absl::StrCat(what, ": ", ArchiveError(out_)));
}

absl::Status TarWriter::AddBytes(const std::string& name, absl::string_view data) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                 archive_entry_free);
  archive_entry_copy_pathname(entry.get(), name.c_str());
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), 0644);
  archive_entry_set_size(entry.get(), static_cast<la_int64_t>(data.size()));
  if (archive_write_header(out_, entry.get()) < ARCHIVE_OK) {
    return Error(absl::StrCat("write entry \"", name, "\""));
  }
  if (!data.empty() && archive_write_data(out_, data.data(), data.size()) < 0) {
    return Error(absl::StrCat("write data of \"", name, "\""));
  }
  return absl::OkStatus();
}

}  // namespace nodeagent::image
