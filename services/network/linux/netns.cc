#include "services/network/linux/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"
#include "services/network/linux/netlink.h"

namespace nodeagent::network::linux {
namespace {

using nodeagent::linux::LastErrnoStatus;
using nodeagent::linux::UniqueFd;

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

// Mount points in /proc/self/mountinfo unescape "\040" and friends.
std::string Unescape(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      int value = (text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 + (text[i + 3] - '0');
      out.push_back(static_cast<char>(value));
      i += 3;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

}  // namespace

bool IsMountPoint(const std::string& path) {
  absl::StatusOr<std::string> mountinfo = nodeagent::linux::ReadFile("/proc/self/mountinfo");
  if (!mountinfo.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*mountinfo, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 4 && Unescape(fields[4]) == path) return true;
  }
  return false;
}

absl::Status EnsurePrivateMountPoint(const std::string& dir) {
  NA_RETURN_IF_ERROR(nodeagent::linux::MakeDirs(dir, 0711));
  if (!IsMountPoint(dir)) {
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return LastErrnoStatus(absl::StrCat("mount \"", dir, "\" -> \"", dir, "\" (MS_BIND)"));
    }
  }
  if (::mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    return LastErrnoStatus(absl::StrCat("mount \"", dir, "\" (MS_PRIVATE)"));
  }
  return absl::OkStatus();
}

absl::Status RemoveMountPoint(const std::string& dir) {
  if (!IsMountPoint(dir)) return absl::OkStatus();
  if (::umount2(dir.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return LastErrnoStatus(absl::StrCat("umount \"", dir, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<PreparedNetns> PrepareNetns() {
  // unshare(CLONE_NEWNET) moves only the calling thread: a throwaway thread makes the
  // namespace and opens what is needed inside it, and the service's own threads never leave
  // the host's namespace.
  absl::StatusOr<UniqueFd> netns = absl::InternalError("not run");
  absl::StatusOr<Netlink> netlink = absl::InternalError("not run");
  std::thread worker([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      netns = LastErrnoStatus("unshare(CLONE_NEWNET)");
      return;
    }
    netns = nodeagent::linux::OpenFile("/proc/thread-self/ns/net", O_RDONLY);
    if (netns.ok()) netlink = Netlink::Open();
  });
  worker.join();
  if (!netns.ok()) return Annotate(netns.status(), "create netns");
  if (!netlink.ok()) return Annotate(netlink.status(), "create netns");
  // Loopback is down in a new namespace; its index is always 1.
  NA_RETURN_IF_ERROR(Annotate(netlink->SetUp(1), "create netns: lo up"));
  return PreparedNetns{std::move(*netns), std::move(*netlink)};
}

absl::Status PinNetns(int netns_fd, const std::string& path) {
  NA_ASSIGN_OR_RETURN(UniqueFd file,
                      nodeagent::linux::OpenFile(path, O_RDONLY | O_CREAT | O_EXCL, 0444));
  file.Reset();
  std::string source = absl::StrCat("/proc/self/fd/", netns_fd);
  if (::mount(source.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    absl::Status s = LastErrnoStatus(
        absl::StrCat("pin netns: mount \"", source, "\" -> \"", path, "\" (MS_BIND)"));
    ::unlink(path.c_str());
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenPinnedNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("netns \"", path, "\": missing"));
    return LastErrnoStatus(absl::StrCat("open netns \"", path, "\""));
  }
  UniqueFd out(fd);
  struct statfs st;
  if (::fstatfs(fd, &st) != 0) return LastErrnoStatus(absl::StrCat("statfs \"", path, "\""));
  if (st.f_type != NSFS_MAGIC) {
    return absl::NotFoundError(absl::StrCat("netns \"", path, "\": no namespace pinned there"));
  }
  return out;
}

absl::Status RemovePinnedNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return LastErrnoStatus(absl::StrCat("umount netns \"", path, "\""));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return LastErrnoStatus(absl::StrCat("remove netns file \"", path, "\""));
  }
  return absl::OkStatus();
}

absl::Status WriteNetSysctl(const std::string& key, const std::string& value) {
  std::string path = absl::StrCat("/proc/sys/net/", key);
  NA_ASSIGN_OR_RETURN(UniqueFd fd, nodeagent::linux::OpenFile(path, O_WRONLY));
  return Annotate(nodeagent::linux::WriteAll(fd.get(), value),
                  absl::StrCat("write \"", value, "\" to \"", path, "\""));
}

absl::StatusOr<std::string> ReadNetSysctl(const std::string& key) {
  NA_ASSIGN_OR_RETURN(std::string text,
                      nodeagent::linux::ReadFile(absl::StrCat("/proc/sys/net/", key)));
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace nodeagent::network::linux

namespace nodeagent::network::linux {

absl::Status RewriteFileInPlace(const std::string& path, const std::string& content) {
  NA_ASSIGN_OR_RETURN(nodeagent::linux::UniqueFd fd,
                      nodeagent::linux::OpenFile(path, O_WRONLY | O_CREAT, 0644));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n =
        ::pwrite(fd.get(), content.data() + done, content.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus(absl::StrCat("write \"", path, "\""));
    }
    done += static_cast<size_t>(n);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(content.size())) != 0) {
    return LastErrnoStatus(absl::StrCat("truncate \"", path, "\""));
  }
  return absl::OkStatus();
}

}  // namespace nodeagent::network::linux

namespace nodeagent::network::linux {

absl::Status ReplaceFile(const std::string& path, const std::string& data, bool durable) {
  if (durable) return nodeagent::linux::WriteFileAtomic(path, data, 0600);
  std::string tmp = absl::StrCat(path, ".tmp-", ::getpid());
  {
    NA_ASSIGN_OR_RETURN(nodeagent::linux::UniqueFd fd,
                        nodeagent::linux::OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600));
    if (absl::Status s = nodeagent::linux::WriteAll(fd.get(), data); !s.ok()) {
      ::unlink(tmp.c_str());
      return Annotate(s, absl::StrCat("write \"", tmp, "\""));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = LastErrnoStatus(absl::StrCat("rename \"", tmp, "\" -> \"", path, "\""));
    ::unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

}  // namespace nodeagent::network::linux
