#include "services/runtime/linux/attach_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/status_macros.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;
using linux::UniqueFd;

struct SocketAddress {
  UniqueFd dir;
  struct sockaddr_un addr = {};
};

absl::StatusOr<SocketAddress> AddressIn(const std::string& dir) {
  SocketAddress a;
  int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return LastErrnoStatus(absl::StrCat("open \"", dir, "\""));
  a.dir.Reset(fd);
  a.addr.sun_family = AF_UNIX;
  std::string path = absl::StrCat("/proc/self/fd/", fd, "/", kAttachSocketFile);
  std::memcpy(a.addr.sun_path, path.c_str(), path.size() + 1);  // Always fits: < 40 bytes.
  return a;
}

}  // namespace

absl::StatusOr<UniqueFd> ListenAttachSocket(const std::string& dir) {
  NA_ASSIGN_OR_RETURN(SocketAddress a, AddressIn(dir));
  const std::string shown = absl::StrCat(dir, "/", kAttachSocketFile);
  if (::unlinkat(a.dir.get(), kAttachSocketFile, 0) != 0 && errno != ENOENT) {
    return LastErrnoStatus(absl::StrCat("remove stale \"", shown, "\""));
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return LastErrnoStatus("socket for attach");
  UniqueFd sock(fd);
  if (::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&a.addr), sizeof(a.addr)) != 0) {
    return LastErrnoStatus(absl::StrCat("bind \"", shown, "\""));
  }
  if (::fchmodat(a.dir.get(), kAttachSocketFile, 0600, 0) != 0) {
    return LastErrnoStatus(absl::StrCat("chmod \"", shown, "\""));
  }
  if (::listen(sock.get(), 16) != 0) return LastErrnoStatus(absl::StrCat("listen \"", shown, "\""));
  return sock;
}

absl::StatusOr<UniqueFd> ConnectAttachSocket(const std::string& dir) {
  NA_ASSIGN_OR_RETURN(SocketAddress a, AddressIn(dir));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return LastErrnoStatus("socket for attach");
  UniqueFd sock(fd);
  int rc;
  do {
    rc = ::connect(sock.get(), reinterpret_cast<struct sockaddr*>(&a.addr), sizeof(a.addr));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    std::string what = absl::StrCat("connect \"", dir, "/", kAttachSocketFile, "\"");
    if (err == ECONNREFUSED || err == ENOENT) {
      return absl::UnavailableError(
          absl::StrCat(what, ": ", std::strerror(err), " (the process has ended)"));
    }
    return linux::ErrnoStatus(err, what);
  }
  return sock;
}

}  // namespace nodeagent::runtime
