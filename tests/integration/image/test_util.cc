#include "tests/integration/image/test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "services/common/linux/files.h"

namespace nodeagent::image::testing {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "test_util: %s\n", what.c_str());
  std::abort();
}

la_ssize_t Append(archive*, void* opaque, const void* buffer, size_t size) {
  static_cast<std::string*>(opaque)->append(static_cast<const char*>(buffer), size);
  return static_cast<la_ssize_t>(size);
}

}  // namespace

ScopedTempDir::ScopedTempDir(const std::string& prefix) {
  std::string templ = "/var/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) Die("mkdtemp " + templ);
  path_ = templ;
}

ScopedTempDir::~ScopedTempDir() {
  if (absl::Status s = linux::RemoveTree(path_); !s.ok()) {
    std::fprintf(stderr, "ScopedTempDir: %s\n", std::string(s.message()).c_str());
  }
}

struct TarBuilder::Impl {
  std::string out;
  archive* a = nullptr;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

TarBuilder::TarBuilder(Compression compression) : impl_(std::make_unique<Impl>()) {
  impl_->a = archive_write_new();
  archive_write_set_format_pax(impl_->a);
  // No padding after the end-of-archive blocks, compressed or not, so that the same entries
  // give the same uncompressed bytes whatever the compression.
  archive_write_set_bytes_in_last_block(impl_->a, 1);
  switch (compression) {
    case Compression::kNone:
      archive_write_add_filter_none(impl_->a);
      break;
    case Compression::kGzip:
      archive_write_add_filter_gzip(impl_->a);
      break;
    case Compression::kBzip2:
      archive_write_add_filter_bzip2(impl_->a);
      break;
    case Compression::kXz:
      archive_write_add_filter_xz(impl_->a);
      break;
    case Compression::kZstd:
      archive_write_add_filter_zstd(impl_->a);
      break;
  }
  if (archive_errno(impl_->a) != 0) Die(archive_error_string(impl_->a));
  if (archive_write_open(impl_->a, &impl_->out, nullptr, Append, nullptr) != ARCHIVE_OK) {
    Die(archive_error_string(impl_->a));
  }
}

TarBuilder::~TarBuilder() {
  if (impl_->a != nullptr) archive_write_free(impl_->a);
}

void TarBuilder::Add(const std::string& path, unsigned int type, TarMeta meta,
                     const std::string& content, const std::string& symlink,
                     const std::string& hardlink) {
  archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, path.c_str());
  archive_entry_set_filetype(entry, type);
  archive_entry_set_perm(entry, meta.mode);
  archive_entry_set_uid(entry, meta.uid);
  archive_entry_set_gid(entry, meta.gid);
  archive_entry_set_mtime(entry, meta.mtime, 0);
  archive_entry_set_size(entry, static_cast<la_int64_t>(content.size()));
  if (!symlink.empty()) archive_entry_set_symlink(entry, symlink.c_str());
  if (!hardlink.empty()) archive_entry_set_hardlink(entry, hardlink.c_str());
  for (const auto& [name, value] : impl_->xattrs) {
    archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
  }
  impl_->xattrs.clear();
  if (archive_write_header(impl_->a, entry) != ARCHIVE_OK) Die(archive_error_string(impl_->a));
  if (!content.empty()) archive_write_data(impl_->a, content.data(), content.size());
  archive_entry_free(entry);
}

TarBuilder& TarBuilder::Dir(const std::string& path, TarMeta meta) {
  if (meta.mode == 0) meta.mode = 0755;
  Add(path, AE_IFDIR, meta, "", "", "");
  return *this;
}

TarBuilder& TarBuilder::File(const std::string& path, const std::string& content, TarMeta meta) {
  if (meta.mode == 0) meta.mode = 0644;
  Add(path, AE_IFREG, meta, content, "", "");
  return *this;
}

TarBuilder& TarBuilder::Symlink(const std::string& path, const std::string& target) {
  Add(path, AE_IFLNK, TarMeta{.mode = 0777}, "", target, "");
  return *this;
}

TarBuilder& TarBuilder::Hardlink(const std::string& path, const std::string& target) {
  Add(path, AE_IFREG, TarMeta{.mode = 0644}, "", "", target);
  return *this;
}

TarBuilder& TarBuilder::Fifo(const std::string& path) {
  Add(path, AE_IFIFO, TarMeta{.mode = 0600}, "", "", "");
  return *this;
}

TarBuilder& TarBuilder::CharDevice(const std::string& path, unsigned int major,
                                   unsigned int minor) {
  archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, path.c_str());
  archive_entry_set_filetype(entry, AE_IFCHR);
  archive_entry_set_perm(entry, 0666);
  archive_entry_set_rdevmajor(entry, major);
  archive_entry_set_rdevminor(entry, minor);
  if (archive_write_header(impl_->a, entry) != ARCHIVE_OK) Die(archive_error_string(impl_->a));
  archive_entry_free(entry);
  return *this;
}

TarBuilder& TarBuilder::NextXattr(const std::string& name, const std::string& value) {
  impl_->xattrs.emplace_back(name, value);
  return *this;
}

std::string TarBuilder::Finish() {
  if (archive_write_close(impl_->a) != ARCHIVE_OK) Die(archive_error_string(impl_->a));
  archive_write_free(impl_->a);
  impl_->a = nullptr;
  return std::move(impl_->out);
}

std::string Inflate(const std::string& compressed) {
  std::string out;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_raw(a);
  archive_entry* entry = nullptr;
  if (archive_read_open_memory(a, compressed.data(), compressed.size()) == ARCHIVE_OK &&
      archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    char buf[8192];
    for (la_ssize_t n; (n = archive_read_data(a, buf, sizeof buf)) > 0;) out.append(buf, n);
  }
  archive_read_free(a);
  return out;
}
ByteSource SourceOf(const std::string& data, size_t chunk_size) {
  auto offset = std::make_shared<size_t>(0);
  return [&data, chunk_size, offset]() -> absl::StatusOr<absl::string_view> {
    absl::string_view chunk = absl::string_view(data).substr(*offset, chunk_size);
    *offset += chunk.size();
    return chunk;
  };
}

int RunInPrivateMountNamespace(const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) {
      std::perror("unshare(CLONE_NEWNS)");
      ::_exit(100);
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      std::perror("mount / MS_REC|MS_PRIVATE");
      ::_exit(101);
    }
    int code = body();
    std::fflush(nullptr);
    ::_exit(code);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string HostMountInfo() { return ReadFileOrDie("/proc/self/mountinfo"); }

size_t CountEntries(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = linux::ListDir(dir);
  return names.ok() ? names->size() : 0;
}

struct stat StatOrDie(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) Die("lstat " + path);
  return st;
}

std::string ReadFileOrDie(const std::string& path) {
  absl::StatusOr<std::string> text = linux::ReadFile(path);
  if (!text.ok()) Die(std::string(text.status().message()));
  return *text;
}

}  // namespace nodeagent::image::testing
