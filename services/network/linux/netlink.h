#pragma once

// rtnetlink through libmnl: links (bridges, veth pairs), addresses and routes. A socket talks
// to the network namespace it was opened in; OpenIn() opens one inside another namespace (from
// a short-lived thread that joins it, so the calling thread never changes namespace).

#include <libmnl/libmnl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::network::linux {

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;  // "bridge", "veth", "" for devices without link info.
  int master = 0;    // Index of the bridge it is enslaved to, 0 if none.
  bool up = false;
  std::string mac;
};

struct RouteInfo {
  uint32_t dst = 0;  // Host byte order.
  int prefix = 0;
  int oif = 0;
};

struct VethOptions {
  std::string host_name;
  std::string peer_name = "eth0";
  int peer_netns_fd = -1;  // The peer is made directly in this namespace.
  int master_index = 0;    // Bridge for the host end.
  std::string peer_mac;    // "02:42:..."; empty lets the kernel pick.
  int mtu = 0;             // 0: the kernel's default.
};

class Netlink {
 public:
  // A socket in the calling thread's network namespace.
  static absl::StatusOr<Netlink> Open();
  // A socket in the namespace `netns_fd` refers to.
  static absl::StatusOr<Netlink> OpenIn(int netns_fd);

  Netlink(Netlink&&) = default;
  Netlink& operator=(Netlink&&) = default;

  absl::Status CreateBridge(const std::string& name, int mtu);
  absl::Status CreateVeth(const VethOptions& options);
  // NOT_FOUND when there is no such link.
  absl::StatusOr<LinkInfo> GetLink(const std::string& name);
  absl::StatusOr<std::vector<LinkInfo>> ListLinks();
  absl::Status SetUp(int index);
  // NOT_FOUND when there is no such link.
  absl::Status DeleteLink(const std::string& name);
  // Adds ip/prefix to the link; an address it already has is not an error.
  absl::Status AddAddress(int index, uint32_t ip, int prefix);
  // Adds the default route via `gateway` on `oif`; an existing one is not an error.
  absl::Status AddDefaultRoute(uint32_t gateway, int oif);
  // Gives link `index` the address ip/prefix, brings it up and, when `gateway` is not 0, adds
  // the default route via it: three requests sent as one batch (one round trip). An address or
  // route that exists already is not an error.
  absl::Status ConfigureInterface(int index, uint32_t ip, int prefix, uint32_t gateway);
  // IPv4 routes of the main table.
  absl::StatusOr<std::vector<RouteInfo>> ListRoutes();

 private:
  struct Closer {
    void operator()(mnl_socket* s) const { mnl_socket_close(s); }
  };
  explicit Netlink(mnl_socket* socket);
  // Sends one request and waits for its acknowledgement; `what` names it in errors.
  absl::Status Request(nlmsghdr* nlh, absl::string_view what);
  // Sends the `count` requests laid out one after another in `buf` (`len` bytes) at once and
  // reads their acknowledgements; `what[i]` names request i in errors. An EEXIST answer to a
  // request whose `exist_ok[i]` is set counts as success.
  absl::Status Batch(char* buf, size_t len, int count, const std::string* what,
                     const bool* exist_ok);
  // Runs a request and feeds its replies to `callback`. With `reset`, a dump interrupted by a
  // concurrent change (NLM_F_DUMP_INTR) is drained, `reset` clears what the callback gathered,
  // and the dump runs again (at most 10 times).
  absl::Status Dump(nlmsghdr* nlh, absl::string_view what, mnl_cb_t callback, void* data,
                    const std::function<void()>& reset = nullptr);

  std::unique_ptr<mnl_socket, Closer> socket_;
  uint32_t port_id_ = 0;
  uint32_t seq_ = 0;
};

}  // namespace nodeagent::network::linux
