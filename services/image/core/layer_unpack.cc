#include "services/image/core/layer_unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>

#include <cerrno>
#include <climits>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/digest.h"
#include "services/image/core/host_ops.h"

namespace nodeagent::image {
namespace {

// How the tarball becomes a layer, in one streaming pass:
//
//   source bytes -> [outer archive_read: decompression filters + "raw" format]
//                -> decompressed tar bytes, hashed here (the diff id)
//                -> [inner archive_read: tar format] -> entries -> archive_write_disk
//
// The inner reader pulls from the outer one through a read callback, so the diff id is the
// sha256 of exactly the uncompressed stream, computed while unpacking. The alternatives
// were worse: spooling the input to a temp file and reading it twice doubles the disk I/O
// of every import, and hashing the compressed bytes would give a digest that changes with
// the compression level rather than the content.

// Files this big have their pages sent to disk every this many bytes while they are written.
constexpr int64_t kWritebackStepBytes = 4 << 20;

// Two 512-byte zero blocks end a tar archive.
constexpr int64_t kEndOfArchiveBytes = 1024;

// libarchive's "no errno" error number (ARCHIVE_ERRNO_MISC is not in its public header).
constexpr int kArchiveErrnoMisc = -1;

constexpr absl::string_view kWhiteoutPrefix = ".wh.";
constexpr absl::string_view kOpaqueWhiteout = ".wh..wh..opq";

struct ReadArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
using ReadArchive = std::unique_ptr<archive, ReadArchiveDeleter>;
using WriteArchive = std::unique_ptr<archive, WriteArchiveDeleter>;

std::string ArchiveError(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown libarchive error";
}

// Client data of the outer reader: the caller's byte source.
struct SourceState {
  const ByteSource* source = nullptr;
  absl::Status error;
  int64_t bytes = 0;
  // Gets the input bytes while the blob is the input itself.
  const std::function<absl::Status(absl::string_view)>* sink = nullptr;
  // The first chunk, read (and sunk) to see the compression; handed out again first.
  std::optional<absl::string_view> pending;
  // Hashes the input when set.
  Sha256* hasher = nullptr;
};

// The next chunk of input ("" at the end), given to the sink and counted. On error, the
// status is kept in `state->error`.
bool PullSource(SourceState* state, absl::string_view* out) {
  if (state->pending) {
    *out = *state->pending;
    state->pending.reset();
    return true;
  }
  absl::StatusOr<absl::string_view> chunk = (*state->source)();
  if (!chunk.ok()) {
    state->error = chunk.status();
    return false;
  }
  if (state->sink != nullptr && *state->sink && !chunk->empty()) {
    if (absl::Status s = (*state->sink)(*chunk); !s.ok()) {
      state->error = s;
      return false;
    }
  }
  if (state->hasher != nullptr) state->hasher->Update(*chunk);
  state->bytes += static_cast<int64_t>(chunk->size());
  *out = *chunk;
  return true;
}

la_ssize_t ReadFromSource(archive* a, void* opaque, const void** buffer) {
  auto* state = static_cast<SourceState*>(opaque);
  absl::string_view chunk;
  if (!PullSource(state, &chunk)) {
    archive_set_error(a, kArchiveErrnoMisc, "input stream failed");
    return ARCHIVE_FATAL;
  }
  *buffer = chunk.data();
  return static_cast<la_ssize_t>(chunk.size());
}

// gzip through ISA-L's inflate, about four times zlib's speed (libarchive's gzip filter uses
// zlib): gzip is what registries serve, and inflating was the largest part of a pull's CPU.
// Concatenated members are read one after another, as gzip -d does; each member's CRC32
// and length are checked by ISA-L.
class GzipInflater {
 public:
  explicit GzipInflater(SourceState* source)
      : source_(source), state_(std::make_unique<inflate_state>()), out_(kOutBytes, '\0') {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;
  }

  // The next decompressed block; empty at the end. On error returns false and sets `error`.
  bool Next(absl::string_view* block, std::string* error) {
    while (true) {
      if (state_->block_state == ISAL_BLOCK_FINISH) {
        // A member ended: the input ends here, or another member follows. Zero padding
        // after the last member is ignored, as gzip -d does.
        if (!FillInput(error)) return false;
        while (state_->avail_in > 0 && state_->next_in[0] == 0) {
          ++state_->next_in;
          --state_->avail_in;
          if (!FillInput(error)) return false;
        }
        if (state_->avail_in == 0) {
          *block = absl::string_view();
          return true;
        }
        uint8_t* next_in = state_->next_in;
        uint32_t avail_in = state_->avail_in;
        isal_inflate_reset(state_.get());
        state_->crc_flag = ISAL_GZIP;
        state_->next_in = next_in;
        state_->avail_in = avail_in;
      }
      if (!FillInput(error)) return false;
      if (state_->avail_in == 0 && input_done_) {
        *error = "gzip: unexpected end of input";
        return false;
      }
      state_->next_out = reinterpret_cast<uint8_t*>(out_.data());
      state_->avail_out = static_cast<uint32_t>(out_.size());
      int r = isal_inflate(state_.get());
      if (r != ISAL_DECOMP_OK) {
        *error = absl::StrCat("gzip: ", InflateError(r));
        return false;
      }
      size_t produced = out_.size() - state_->avail_out;
      if (produced > 0) {
        *block = absl::string_view(out_.data(), produced);
        return true;
      }
    }
  }

 private:
  static constexpr size_t kOutBytes = 1 << 20;

  // Makes input available unless the source is exhausted.
  bool FillInput(std::string* error) {
    while (state_->avail_in == 0 && !input_done_) {
      absl::string_view chunk;
      if (!PullSource(source_, &chunk)) {
        *error = "input stream failed";
        return false;
      }
      if (chunk.empty()) {
        input_done_ = true;
        break;
      }
      // ISA-L only reads next_in.
      state_->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(chunk.data()));
      state_->avail_in = static_cast<uint32_t>(chunk.size());
    }
    return true;
  }

  static std::string InflateError(int code) {
    switch (code) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER:
        return "not a gzip header";
      case ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch (corrupt data)";
      default:
        return absl::StrCat("inflate error ", code);
    }
  }

  SourceState* source_;
  std::unique_ptr<inflate_state> state_;
  std::string out_;
  bool input_done_ = false;
};

// Client data of the inner (tar) reader: the outer reader's decompressed output.
struct DecompressedState {
  archive* outer = nullptr;
  // Set instead of `outer` for gzip input.
  GzipInflater* gzip = nullptr;
  Sha256 hasher;
  bool hash = true;
  int64_t bytes = 0;
  // Zero bytes at the end of what was read so far: a whole tar ends with at least two zero
  // blocks, which tells a complete archive from one cut at an entry boundary.
  int64_t trailing_zeros = 0;
  bool eof = false;
  // libarchive's message when the outer stream failed (bad gzip, truncated xz, ...).
  std::string error;
  // Limit of `bytes`; 0 for none. Past it, `too_big` is set and reading fails.
  int64_t max_bytes = 0;
  bool too_big = false;
  // Gets the decompressed bytes when the blob is the tar itself.
  const std::function<absl::Status(absl::string_view)>* sink = nullptr;
  absl::Status sink_error;
};

// Returns the next block of decompressed bytes (0 at the end), hashing it on the way.
la_ssize_t NextDecompressedBlock(DecompressedState* state, const void** buffer) {
  while (!state->eof) {
    size_t size = 0;
    if (state->gzip != nullptr) {
      absl::string_view out;
      if (!state->gzip->Next(&out, &state->error)) return ARCHIVE_FATAL;
      if (out.empty()) {
        state->eof = true;
        break;
      }
      *buffer = out.data();
      size = out.size();
    } else {
      la_int64_t offset = 0;
      int r = archive_read_data_block(state->outer, buffer, &size, &offset);
      if (r == ARCHIVE_EOF) {
        state->eof = true;
        break;
      }
      if (r < ARCHIVE_OK) {
        state->error = ArchiveError(state->outer);
        return ARCHIVE_FATAL;
      }
    }
    if (size == 0) continue;
    absl::string_view block(static_cast<const char*>(*buffer), size);
    if (state->hash) state->hasher.Update(block);
    state->bytes += static_cast<int64_t>(size);
    if (state->max_bytes > 0 && state->bytes > state->max_bytes) {
      state->too_big = true;
      state->error =
          absl::StrCat("uncompressed layer is over the limit of ", state->max_bytes, " bytes");
      return ARCHIVE_FATAL;
    }
    if (state->sink != nullptr && *state->sink) {
      if (absl::Status s = (*state->sink)(block); !s.ok()) {
        state->sink_error = s;
        state->error = "blob sink failed";
        return ARCHIVE_FATAL;
      }
    }
    size_t last_nonzero = block.find_last_not_of('\0');
    if (last_nonzero == absl::string_view::npos) {
      state->trailing_zeros += static_cast<int64_t>(size);
    } else {
      state->trailing_zeros = static_cast<int64_t>(size - last_nonzero - 1);
    }
    return static_cast<la_ssize_t>(size);
  }
  return 0;
}

la_ssize_t ReadDecompressed(archive* a, void* opaque, const void** buffer) {
  auto* state = static_cast<DecompressedState*>(opaque);
  la_ssize_t n = NextDecompressedBlock(state, buffer);
  if (n < 0) archive_set_error(a, kArchiveErrnoMisc, "%s", state->error.c_str());
  return n;
}

absl::StatusOr<ReadArchive> OpenDecompressor(SourceState* source) {
  ReadArchive outer(archive_read_new());
  if (outer == nullptr) return absl::ResourceExhaustedError("archive_read_new failed");
  // The compressions rootfs tarballs come in. Debian's libarchive decodes all of these
  // in-process (it links zlib, libbz2, liblzma and libzstd).
  for (auto support : {archive_read_support_filter_gzip, archive_read_support_filter_bzip2,
                       archive_read_support_filter_xz, archive_read_support_filter_lzma,
                       archive_read_support_filter_zstd}) {
    if (support(outer.get()) < ARCHIVE_WARN) {
      return absl::InternalError(absl::StrCat("libarchive: ", ArchiveError(outer.get())));
    }
  }
  // "raw" hands back the decompressed stream as one pseudo-entry.
  if (archive_read_support_format_raw(outer.get()) != ARCHIVE_OK ||
      archive_read_open(outer.get(), source, nullptr, ReadFromSource, nullptr) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(absl::StrCat("input: ", ArchiveError(outer.get())));
  }
  archive_entry* entry = nullptr;
  if (archive_read_next_header(outer.get(), &entry) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(absl::StrCat("input: ", ArchiveError(outer.get())));
  }
  return outer;
}

absl::StatusOr<WriteArchive> OpenDiskWriter() {
  WriteArchive disk(archive_write_disk_new());
  if (disk == nullptr) return absl::ResourceExhaustedError("archive_write_disk_new failed");
  // No archive_write_disk_set_standard_lookup: owners are the numeric ids in the tar, never
  // the host's idea of what a user name means.
  //
  // Note: libarchive briefly sets the process umask to 0 per entry to read it. Every file
  // this service creates passes an explicit mode, so other threads are not affected.
  constexpr int kFlags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                         ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT;
  if (archive_write_disk_set_options(disk.get(), kFlags) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("libarchive: ", ArchiveError(disk.get())));
  }
  return disk;
}

// Overlay metadata in a lower layer changes how overlayfs reads it (redirects, opaque dirs,
// metacopy); only the store may write those, never a tarball.
bool IsForbiddenXattr(absl::string_view name) {
  return absl::StartsWith(name, "trusted.overlay.") || absl::StartsWith(name, "user.overlay.");
}

void DropForbiddenXattrs(archive_entry* entry, absl::string_view entry_path) {
  if (archive_entry_xattr_count(entry) == 0) return;
  std::vector<std::pair<std::string, std::string>> kept;
  bool dropped = false;
  archive_entry_xattr_reset(entry);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
    if (IsForbiddenXattr(name)) {
      LogWarning("layer entry \"%s\": dropping xattr %s", entry_path, name);
      dropped = true;
      continue;
    }
    kept.emplace_back(name, std::string(static_cast<const char*>(value), size));
  }
  if (!dropped) return;
  archive_entry_xattr_clear(entry);
  for (const auto& [kept_name, kept_value] : kept) {
    archive_entry_xattr_add_entry(entry, kept_name.c_str(), kept_value.data(), kept_value.size());
  }
}

// The status for a failed write: the kernel's errno says whether the host or the tarball is
// to blame. Host paths of the temporary directory are left out of the message.
absl::Status WriteError(archive* disk, absl::string_view entry_path, const std::string& dir) {
  std::string message = absl::StrReplaceAll(ArchiveError(disk), {{absl::StrCat(dir, "/"), ""}});
  std::string text = absl::StrCat("entry \"", entry_path, "\": ", message);
  switch (archive_errno(disk)) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(text);
    case EIO:
    case ENOMEM:
    case EROFS:
      return absl::InternalError(text);
    default:
      return absl::InvalidArgumentError(text);
  }
}

class Unpacker {
 public:
  Unpacker(const ByteSource& source, std::string dir, const UnpackOptions& options)
      : dir_(std::move(dir)), options_(options) {
    source_.source = &source;
    source_.sink = &options_.blob_sink;
    decompressed_.max_bytes = options_.max_tar_bytes;
    decompressed_.hash = options_.compute_diff_id;
    if (options_.hash_input) source_.hasher = &input_hasher_;
  }

  absl::StatusOr<UnpackedLayer> Run() {
    absl::Status status = Extract();
    // The source's own error (a cancelled upload, say) explains any failure that follows it.
    if (!source_.error.ok()) return Annotate(source_.error, "read input");
    if (!decompressed_.sink_error.ok()) return Annotate(decompressed_.sink_error, "store blob");
    if (decompressed_.too_big) return absl::ResourceExhaustedError(decompressed_.error);
    if (!decompressed_.error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("input: ", decompressed_.error));
    }
    if (!status.ok()) return status;
    UnpackedLayer layer;
    if (decompressed_.hash) layer.diff_id_hex = decompressed_.hasher.FinishHex();
    if (options_.hash_input) {
      // A blob that is the tar itself was hashed once, as the diff id.
      layer.blob_digest_hex = blob_is_tar_ ? layer.diff_id_hex : input_hasher_.FinishHex();
    }
    layer.tar_bytes = decompressed_.bytes;
    layer.input_bytes = source_.bytes;
    layer.entries = entries_;
    layer.blob_compression = blob_compression_;
    layer.input_compressed = input_compressed_;
    return layer;
  }

 private:
  absl::Status Extract() {
    // The first bytes tell gzip (inflated here) from the rest (libarchive's filters).
    absl::string_view head;
    if (!PullSource(&source_, &head)) return source_.error;
    if (head.empty()) return absl::InvalidArgumentError("input is empty: want a tar archive");
    source_.pending = head;
    std::unique_ptr<GzipInflater> gzip;
    ReadArchive outer;
    if (SniffCompression(head) == LayerCompression::kGzip) {
      gzip = std::make_unique<GzipInflater>(&source_);
      decompressed_.gzip = gzip.get();
      blob_compression_ = LayerCompression::kGzip;
      input_compressed_ = true;
    } else {
      NA_ASSIGN_OR_RETURN(outer, OpenDecompressor(&source_));
      decompressed_.outer = outer.get();
      input_compressed_ = archive_filter_code(outer.get(), 0) != ARCHIVE_FILTER_NONE;
      NA_RETURN_IF_ERROR(ChooseBlobCompression(outer.get()));
    }
    // Plain tar, or a tar the blob keeps decompressed: the blob's digest is the diff id.
    blob_is_tar_ = blob_compression_ == LayerCompression::kNone;
    if (blob_is_tar_ && options_.hash_input) {
      source_.hasher = nullptr;
      decompressed_.hash = true;
    }
    ReadArchive tar(archive_read_new());
    if (tar == nullptr) return absl::ResourceExhaustedError("archive_read_new failed");
    if (archive_read_support_format_tar(tar.get()) != ARCHIVE_OK ||
        archive_read_open(tar.get(), &decompressed_, nullptr, ReadDecompressed, nullptr) !=
            ARCHIVE_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a tar archive: ", ArchiveError(tar.get())));
    }
    NA_ASSIGN_OR_RETURN(WriteArchive disk, OpenDiskWriter());
    NA_ASSIGN_OR_RETURN(root_fd_, linux::OpenFile(dir_, O_PATH | O_DIRECTORY | O_CLOEXEC));

    while (true) {
      archive_entry* entry = nullptr;
      int r = archive_read_next_header(tar.get(), &entry);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        if (entries_ == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("not a tar archive: ", ArchiveError(tar.get())));
        }
        return absl::InvalidArgumentError(
            absl::StrCat("after entry \"", last_entry_, "\": ", ArchiveError(tar.get())));
      }
      // ARCHIVE_WARN here is about header details (e.g. a charset hint); the entry is usable.
      NA_RETURN_IF_ERROR(ExtractEntry(tar.get(), disk.get(), entry));
      ++entries_;
    }

    // The tar reader stops at the end-of-archive blocks; the diff id covers the whole
    // uncompressed stream, so hash what follows too.
    const void* ignored = nullptr;
    while (NextDecompressedBlock(&decompressed_, &ignored) > 0) {
    }
    if (!decompressed_.error.empty()) return absl::OkStatus();  // Reported by Run().
    // libarchive (like GNU tar) accepts an archive that stops right after an entry; an
    // upload cut there would pass for a smaller image, so the end marker is required.
    // (Best effort: a last file whose data ends in 1 KiB of zeros looks like the marker.)
    if (decompressed_.trailing_zeros < kEndOfArchiveBytes) {
      return absl::InvalidArgumentError(
          entries_ == 0
              ? std::string("input is truncated: no end-of-archive blocks")
              : absl::StrCat("input is truncated: no end-of-archive blocks after entry \"",
                             last_entry_, "\""));
    }

    // Directory modes and times are applied last (a read-only directory must still take
    // its files first).
    if (archive_write_close(disk.get()) != ARCHIVE_OK) {
      return WriteError(disk.get(), "(directory fixups)", dir_);
    }
    for (const std::string& relative : opaque_dirs_) NA_RETURN_IF_ERROR(MarkOpaque(relative));
    return absl::OkStatus();
  }

  // The blob keeps the input when OCI has a media type for its compression; otherwise
  // (bzip2, xz) it keeps the tar. Nothing decompressed has been read yet.
  absl::Status ChooseBlobCompression(archive* outer) {
    switch (archive_filter_code(outer, 0)) {
      case ARCHIVE_FILTER_NONE:
        blob_compression_ = LayerCompression::kNone;
        break;
      case ARCHIVE_FILTER_GZIP:
        blob_compression_ = LayerCompression::kGzip;
        break;
      case ARCHIVE_FILTER_ZSTD:
        blob_compression_ = LayerCompression::kZstd;
        break;
      default:
        blob_compression_ = LayerCompression::kNone;
        source_.sink = nullptr;
        decompressed_.sink = &options_.blob_sink;
        if (options_.blob_reset) NA_RETURN_IF_ERROR(options_.blob_reset());
        break;
    }
    return absl::OkStatus();
  }

  // Sets overlayfs's opaque mark on a directory of the layer (created when the tar had only
  // the marker), never through a symlink.
  absl::Status MarkOpaque(const std::string& relative) {
    const std::string what = absl::StrCat("opaque directory \"", relative, "\"");
    std::string path = relative.empty() ? dir_ : absl::StrCat(dir_, "/", relative);
    if (!relative.empty()) {
      absl::Status beneath = CheckNoSymlinksBeneath(dir_, relative);
      if (absl::IsNotFound(beneath)) {
        NA_RETURN_IF_ERROR(Annotate(linux::MakeDirs(path, 0755), what));
        beneath = CheckNoSymlinksBeneath(dir_, relative);
      }
      if (!beneath.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": resolves through a symlink"));
      }
    }
    if (!IsDirectory(path)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": not a directory"));
    }
    return Annotate(SetXattrNoFollow(path, std::string(kOverlayOpaqueXattr), "y"), what);
  }

  // Turns an OCI whiteout entry into what overlayfs reads. Returns true when the entry was
  // consumed (an opaque marker, recorded for later), false to extract the (rewritten) entry.
  absl::StatusOr<bool> ConvertWhiteout(archive_entry* entry, const std::string& entry_path,
                                       std::string* relative) {
    size_t slash = relative->rfind('/');
    std::string parent = slash == std::string::npos ? "" : relative->substr(0, slash);
    std::string base = slash == std::string::npos ? *relative : relative->substr(slash + 1);
    if (!absl::StartsWith(base, kWhiteoutPrefix)) return false;
    if (base == kOpaqueWhiteout) {
      opaque_dirs_.push_back(parent);
      return true;
    }
    std::string name = base.substr(kWhiteoutPrefix.size());
    if (absl::StartsWith(name, kWhiteoutPrefix)) {
      // Other ".wh..wh." names are AUFS bookkeeping (hardlink dirs); nothing to extract.
      return true;
    }
    if (name.empty() || name == "." || name == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("entry \"", entry_path, "\": whiteout of nothing"));
    }
    *relative = parent.empty() ? name : absl::StrCat(parent, "/", name);
    archive_entry_set_filetype(entry, AE_IFCHR);
    archive_entry_set_perm(entry, 0);
    archive_entry_set_rdev(entry, 0);
    archive_entry_set_size(entry, 0);
    archive_entry_set_hardlink(entry, nullptr);
    archive_entry_set_symlink(entry, nullptr);
    return false;
  }

  absl::Status ExtractEntry(archive* tar, archive* disk, archive_entry* entry) {
    const char* raw_path = archive_entry_pathname(entry);
    if (raw_path == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("entry after \"", last_entry_, "\": no path"));
    }
    std::string entry_path = raw_path;
    last_entry_ = entry_path;
    const bool is_hardlink = archive_entry_hardlink(entry) != nullptr;
    NA_ASSIGN_OR_RETURN(std::string relative, SanitizeEntryPath(entry_path));
    bool whiteout = false;
    if (options_.convert_whiteouts) {
      NA_ASSIGN_OR_RETURN(bool consumed, ConvertWhiteout(entry, entry_path, &relative));
      if (consumed) return absl::OkStatus();
      whiteout = archive_entry_filetype(entry) == AE_IFCHR && archive_entry_rdev(entry) == 0 &&
                 !relative.empty();
    }
    const unsigned int type = archive_entry_filetype(entry);
    if ((type == AE_IFCHR || type == AE_IFBLK) && !whiteout && !options_.allow_device_nodes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry \"", entry_path, "\": device nodes are not allowed here (unprivileged unpack)"));
    }

    std::string target = relative.empty() ? dir_ : absl::StrCat(dir_, "/", relative);
    if (relative.empty() && archive_entry_filetype(entry) != AE_IFDIR) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry \"", entry_path, "\": the layer root can only be a directory"));
    }
    // libarchive chdir()s into deep paths to shorten them; this process has other threads
    // relying on the working directory, so such paths are refused instead.
    if (target.size() >= PATH_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("entry \"", entry_path, "\": path too long"));
    }
    if (!relative.empty()) {
      NA_RETURN_IF_ERROR(CheckBeneath(entry_path, relative, type == AE_IFDIR, target));
    }
    archive_entry_set_pathname(entry, target.c_str());

    if (const char* raw_link = archive_entry_hardlink(entry); raw_link != nullptr) {
      absl::StatusOr<std::string> link = SanitizeEntryPath(raw_link);
      if (!link.ok() || link->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "entry \"", entry_path, "\": hardlink target \"", raw_link, "\" escapes the layer"));
      }
      // libarchive checks this too (SECURE_SYMLINKS); checking here as well keeps the
      // guarantee independent of the libarchive version.
      if (absl::Status s = CheckNoSymlinksBeneath(dir_, *link); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "entry \"", entry_path, "\": hardlink target \"", raw_link, "\" ",
            absl::IsNotFound(s) ? "is not in the layer" : "resolves through a symlink"));
      }
      std::string link_target = absl::StrCat(dir_, "/", *link);
      if (link_target.size() >= PATH_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat("entry \"", entry_path, "\": hardlink target too long"));
      }
      archive_entry_set_hardlink(entry, link_target.c_str());
    }
    DropForbiddenXattrs(entry, entry_path);

    const int64_t data_bytes = archive_entry_size(entry);
    if (archive_write_header(disk, entry) != ARCHIVE_OK) {
      return WriteError(disk, entry_path, dir_);
    }
    if (options_.on_entry_start) {
      options_.on_entry_start(ExtractedEntry{relative, target, type, is_hardlink, data_bytes});
    }
    // A big file's pages go to disk while the rest is unpacked (libarchive keeps its own fd
    // to itself, so a second one, read-only, asks for the writeback).
    linux::UniqueFd writeback_fd;
    int64_t writeback_done = 0;
    if (options_.start_writeback && type == AE_IFREG && !is_hardlink &&
        data_bytes >= kWritebackStepBytes) {
      absl::StatusOr<linux::UniqueFd> fd =
          linux::OpenFile(target, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
      if (fd.ok()) writeback_fd = *std::move(fd);
    }
    // libarchive zeroes the size of entries it opened no file for (links, directories).
    if (archive_entry_size(entry) > 0) {
      while (true) {
        const void* block = nullptr;
        size_t size = 0;
        la_int64_t offset = 0;
        int r = archive_read_data_block(tar, &block, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) {
          return absl::InvalidArgumentError(
              absl::StrCat("entry \"", entry_path, "\": ", ArchiveError(tar)));
        }
        if (archive_write_data_block(disk, block, size, offset) < ARCHIVE_OK) {
          return WriteError(disk, entry_path, dir_);
        }
        const int64_t written = static_cast<int64_t>(offset) + static_cast<int64_t>(size);
        if (options_.on_entry_data) options_.on_entry_data(written);
        if (writeback_fd.get() >= 0 && written - writeback_done >= kWritebackStepBytes) {
          StartWriteback(writeback_fd.get(), writeback_done, written - writeback_done);
          writeback_done = written;
        }
      }
    }
    if (archive_write_finish_entry(disk) != ARCHIVE_OK) return WriteError(disk, entry_path, dir_);
    if (writeback_fd.get() >= 0) StartWriteback(writeback_fd.get(), writeback_done, 0);
    if (options_.on_entry_end) options_.on_entry_end();
    if (type != AE_IFDIR || is_hardlink) Forget(relative);
    return absl::OkStatus();
  }

  // Where an entry may be written: every directory above it is a real directory of the layer
  // (never a symlink, never outside), and a directory entry does not go through a symlink
  // of its own name. libarchive's SECURE_SYMLINKS checks the same by lstat()ing and opening
  // every component of the absolute path, for every entry: a dozen syscalls each, most of
  // the unpack's kernel time. Here the kernel resolves the parent once (openat2 beneath the
  // layer's fd) and directories already seen are remembered. Only this unpack writes in the
  // layer, so the memory is exact as long as an entry that replaces a path makes it forget.
  absl::Status CheckBeneath(const std::string& entry_path, const std::string& relative,
                            bool is_directory, const std::string& target) {
    size_t slash = relative.rfind('/');
    if (slash != std::string::npos) {
      std::string parent = relative.substr(0, slash);
      if (!known_dirs_.contains(parent)) {
        absl::StatusOr<BeneathKind> kind = DirectoryBeneath(root_fd_.get(), parent);
        if (!kind.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("entry \"", entry_path, "\": ", kind.status().message()));
        }
        if (*kind == BeneathKind::kNotADirectory) {
          return absl::InvalidArgumentError(absl::StrCat("entry \"", entry_path, "\": \"", parent,
                                                         "\" is a symlink or not a directory"));
        }
        // Missing directories are made by libarchive, as real directories.
        if (*kind == BeneathKind::kDirectory) known_dirs_.insert(parent);
      }
    }
    if (is_directory && !known_dirs_.contains(relative)) {
      // A directory entry over a symlink of the same name would have its mode, owner and
      // times applied through it: the symlink goes first.
      absl::StatusOr<PathInfo> info = LStat(target);
      if (info.ok() && S_ISLNK(info->mode)) {
        NA_RETURN_IF_ERROR(Annotate(UnlinkNoFollow(target),
                                    absl::StrCat("entry \"", entry_path, "\": replace symlink")));
      }
    }
    return absl::OkStatus();
  }

  // `relative` may now be something other than a directory: neither it nor anything below
  // it is known any more.
  void Forget(const std::string& relative) {
    known_dirs_.erase(relative);
    auto first = known_dirs_.lower_bound(absl::StrCat(relative, "/"));
    auto last = known_dirs_.lower_bound(absl::StrCat(relative, "0"));  // '0' sorts after '/'.
    known_dirs_.erase(first, last);
  }

  const std::string dir_;
  const UnpackOptions options_;
  LayerCompression blob_compression_ = LayerCompression::kNone;
  std::vector<std::string> opaque_dirs_;
  linux::UniqueFd root_fd_;
  Sha256 input_hasher_;
  bool blob_is_tar_ = false;
  bool input_compressed_ = false;
  // Directories of the layer (relative paths) known to be real directories.
  std::set<std::string> known_dirs_;
  SourceState source_;
  DecompressedState decompressed_;
  int64_t entries_ = 0;
  std::string last_entry_;
};

}  // namespace

absl::StatusOr<std::string> SanitizeEntryPath(absl::string_view path) {
  std::vector<absl::string_view> kept;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("entry \"", path, "\": path escapes the layer"));
    }
    kept.push_back(part);
  }
  return absl::StrJoin(kept, "/");
}

absl::StatusOr<UnpackedLayer> UnpackLayer(const ByteSource& source, const std::string& dir,
                                          const UnpackOptions& options) {
  return Unpacker(source, dir, options).Run();
}

LayerCompression SniffCompression(absl::string_view head) {
  if (absl::StartsWith(head, "\x1f\x8b")) return LayerCompression::kGzip;
  if (absl::StartsWith(head, "\x28\xb5\x2f\xfd")) return LayerCompression::kZstd;
  return LayerCompression::kNone;
}

}  // namespace nodeagent::image
