#include "services/image/core/busybox_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/common/status_macros.h"
#include "services/image/core/host_ops.h"
#include "services/image/core/layer_unpack.h"

namespace nodeagent::image {
namespace {

struct WriteArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

la_ssize_t AppendToString(archive* /*a*/, void* opaque, const void* buffer, size_t size) {
  static_cast<std::string*>(opaque)->append(static_cast<const char*>(buffer), size);
  return static_cast<la_ssize_t>(size);
}

// Writes tar entries into a string, all owned by root with one fixed mtime.
class TarWriter {
 public:
  static absl::StatusOr<TarWriter> Open(absl::Time mtime) {
    TarWriter writer(mtime);
    writer.out_ = std::make_unique<std::string>();
    writer.archive_.reset(archive_write_new());
    archive* a = writer.archive_.get();
    if (a == nullptr) return absl::ResourceExhaustedError("archive_write_new failed");
    // pax_restricted writes plain ustar headers unless an entry needs more: stable bytes.
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_open(a, writer.out_.get(), nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
      return writer.Error("open");
    }
    return writer;
  }

  absl::Status Directory(const std::string& path, mode_t mode) {
    return Add(path, AE_IFDIR, mode, "", "");
  }
  absl::Status File(const std::string& path, mode_t mode, absl::string_view content) {
    return Add(path, AE_IFREG, mode, content, "");
  }
  absl::Status Symlink(const std::string& path, const std::string& target) {
    return Add(path, AE_IFLNK, 0777, "", target);
  }

  absl::StatusOr<std::string> Finish() && {
    if (archive_write_close(archive_.get()) != ARCHIVE_OK) return Error("close");
    return std::move(*out_);
  }

 private:
  explicit TarWriter(absl::Time mtime) : mtime_(absl::ToUnixSeconds(mtime)) {}

  absl::Status Add(const std::string& path, unsigned int type, mode_t mode,
                   absl::string_view content, const std::string& link_target) {
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    if (entry == nullptr) return absl::ResourceExhaustedError("archive_entry_new failed");
    archive_entry_set_pathname(entry.get(), path.c_str());
    archive_entry_set_filetype(entry.get(), type);
    archive_entry_set_perm(entry.get(), mode);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_mtime(entry.get(), mtime_, 0);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    if (!link_target.empty()) archive_entry_set_symlink(entry.get(), link_target.c_str());
    if (archive_write_header(archive_.get(), entry.get()) != ARCHIVE_OK) {
      return Error(absl::StrCat("entry \"", path, "\""));
    }
    if (!content.empty() && archive_write_data(archive_.get(), content.data(), content.size()) !=
                                static_cast<la_ssize_t>(content.size())) {
      return Error(absl::StrCat("entry \"", path, "\" data"));
    }
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view what) {
    const char* message = archive_.get() ? archive_error_string(archive_.get()) : nullptr;
    return absl::InternalError(
        absl::StrCat("build busybox tar: ", what, ": ", message ? message : "libarchive error"));
  }

  int64_t mtime_;
  // On the heap: libarchive keeps a pointer to it across moves of the writer.
  std::unique_ptr<std::string> out_;
  std::unique_ptr<archive, WriteArchiveDeleter> archive_;
};

constexpr absl::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n";
constexpr absl::string_view kGroup =
    "root:x:0:\n"
    "nobody:x:65534:\n";
constexpr absl::string_view kHosts =
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n";

}  // namespace

absl::StatusOr<std::vector<std::string>> ListBusyboxApplets(const std::string& busybox_path) {
  NA_ASSIGN_OR_RETURN(std::string out, RunAndCaptureStdout({busybox_path, "--list-full"}));
  std::set<std::string> applets;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    absl::StatusOr<std::string> path = SanitizeEntryPath(line);
    if (path.ok() && *path == "bin/busybox") continue;  // The binary itself.
    if (!path.ok() || path->empty()) {
      LogWarning("busybox applet \"%s\" skipped", line);
      continue;
    }
    applets.insert(*std::move(path));
  }
  if (applets.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", busybox_path, " --list-full\" listed no applets"));
  }
  return std::vector<std::string>(applets.begin(), applets.end());
}

absl::StatusOr<std::string> BuildBusyboxRootfsTar(const std::string& busybox_path,
                                                  const std::vector<std::string>& applets,
                                                  absl::Time mtime) {
  NA_ASSIGN_OR_RETURN(std::string busybox, linux::ReadFile(busybox_path));
  NA_ASSIGN_OR_RETURN(TarWriter tar, TarWriter::Open(mtime));

  struct Dir {
    const char* path;
    mode_t mode;
  };
  static constexpr Dir kDirs[] = {
      {"bin", 0755},     {"dev", 0755},      {"etc", 0755}, {"home", 0755},     {"proc", 0555},
      {"root", 0700},    {"sbin", 0755},     {"sys", 0555}, {"tmp", 01777},     {"usr", 0755},
      {"usr/bin", 0755}, {"usr/sbin", 0755}, {"var", 0755}, {"var/tmp", 01777},
  };
  std::set<std::string> dirs;
  for (const Dir& dir : kDirs) {
    NA_RETURN_IF_ERROR(tar.Directory(dir.path, dir.mode));
    dirs.insert(dir.path);
  }
  // Any other directory an applet lives in (none in Debian's build, but --list-full decides).
  for (const std::string& applet : applets) {
    for (size_t slash = applet.find('/'); slash != std::string::npos;
         slash = applet.find('/', slash + 1)) {
      std::string parent = applet.substr(0, slash);
      if (dirs.insert(parent).second) NA_RETURN_IF_ERROR(tar.Directory(parent, 0755));
    }
  }
  NA_RETURN_IF_ERROR(tar.File("bin/busybox", 0755, busybox));
  for (const std::string& applet : applets) {
    NA_RETURN_IF_ERROR(tar.Symlink(applet, "/bin/busybox"));
  }
  NA_RETURN_IF_ERROR(tar.File("etc/passwd", 0644, kPasswd));
  NA_RETURN_IF_ERROR(tar.File("etc/group", 0644, kGroup));
  NA_RETURN_IF_ERROR(tar.File("etc/hosts", 0644, kHosts));
  return std::move(tar).Finish();
}

absl::Status EnsureBusyboxImage(ImageStore& store, const std::string& busybox_path) {
  // An image stored before the content store kept manifests is made again (same bytes, same
  // id), so it can be committed over, saved and pushed.
  if (store.GetImage(kBusyboxImageName).ok() && store.GetManifest(kBusyboxImageName).ok()) {
    return absl::OkStatus();
  }
  if (!linux::PathExists(busybox_path)) {
    LogWarning("\"%s\" not found (install busybox-static): no built-in %s image", busybox_path,
               kBusyboxImageName);
    return absl::OkStatus();
  }
  const std::string what =
      absl::StrCat("build ", kBusyboxImageName, " from \"", busybox_path, "\"");
  // The binary's mtime (the package's build time) dates the image; with the fixed entry
  // mtimes, one busybox package always gives the same image id.
  NA_ASSIGN_OR_RETURN(absl::Time built, ModificationTime(busybox_path));
  built = absl::FromUnixSeconds(absl::ToUnixSeconds(built));
  absl::StatusOr<std::vector<std::string>> applets = ListBusyboxApplets(busybox_path);
  if (!applets.ok()) return Annotate(applets.status(), what);
  absl::StatusOr<std::string> tar = BuildBusyboxRootfsTar(busybox_path, *applets, built);
  if (!tar.ok()) return Annotate(tar.status(), what);

  bool sent = false;
  ByteSource source = [&]() -> absl::StatusOr<absl::string_view> {
    if (sent) return absl::string_view();
    sent = true;
    return absl::string_view(*tar);
  };
  ImageConfig config;
  config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  config.cmd = {"sh"};
  ImportOptions options;
  options.created = built;
  options.created_by = absl::StrCat("nodeagent: built-in image from ", busybox_path);
  absl::StatusOr<Image> image = store.ImportRootfsTar(kBusyboxImageName, config, source, options);
  if (!image.ok()) return Annotate(image.status(), what);
  LogInfo("built-in image %s is %s (%d applets)", kBusyboxImageName, image->id, applets->size());
  return absl::OkStatus();
}

}  // namespace nodeagent::image
