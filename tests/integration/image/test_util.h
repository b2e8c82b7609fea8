#pragma once

// Helpers for the image integration tests: scratch directories, tarballs made in memory,
// and a child process in its own mount namespace for anything that mounts.

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <string>

#include "services/image/core/types.h"

namespace nodeagent::image::testing {

// A directory under /var/tmp, removed with everything below it when the object dies (also
// when the test failed).
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& prefix);
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class Compression { kNone, kGzip, kBzip2, kXz, kZstd };

// Owner, mode and time of a tar entry.
struct TarMeta {
  mode_t mode = 0;  // 0: 0755 for directories, 0644 for files.
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = 1700000000;
};

// Builds a tar archive in memory. Entries are written as given: no path is cleaned up, so
// hostile archives can be made too.
class TarBuilder {
 public:
  explicit TarBuilder(Compression compression = Compression::kNone);
  ~TarBuilder();
  TarBuilder(const TarBuilder&) = delete;
  TarBuilder& operator=(const TarBuilder&) = delete;

  TarBuilder& Dir(const std::string& path, TarMeta meta = {});
  TarBuilder& File(const std::string& path, const std::string& content, TarMeta meta = {});
  TarBuilder& Symlink(const std::string& path, const std::string& target);
  TarBuilder& Hardlink(const std::string& path, const std::string& target);
  TarBuilder& Fifo(const std::string& path);
  // A character device (major, minor).
  TarBuilder& CharDevice(const std::string& path, unsigned int major, unsigned int minor);
  // An xattr on the next entry added.
  TarBuilder& NextXattr(const std::string& name, const std::string& value);

  // The archive bytes (compressed as asked).
  std::string Finish();

 private:
  void Add(const std::string& path, unsigned int type, TarMeta meta, const std::string& content,
           const std::string& symlink, const std::string& hardlink);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The bytes a compressed blob inflates to (any compression libarchive reads).
std::string Inflate(const std::string& compressed);

// Hands `data` out in chunks of `chunk_size` bytes.
ByteSource SourceOf(const std::string& data, size_t chunk_size = 65536);

// Forks a child that enters a new mount namespace, makes every mount private (so nothing
// propagates back to the host), runs `body` and exits with its return value. Returns the
// child's exit code (128+N for signal N). The mounts die with the namespace.
int RunInPrivateMountNamespace(const std::function<int()>& body);

// The host's /proc/self/mountinfo.
std::string HostMountInfo();

// Number of entries in a directory (0 for a missing one).
size_t CountEntries(const std::string& dir);

struct stat StatOrDie(const std::string& path);

std::string ReadFileOrDie(const std::string& path);

}  // namespace nodeagent::image::testing
