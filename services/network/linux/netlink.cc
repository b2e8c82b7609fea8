#include "services/network/linux/netlink.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if_arp.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/linux/errno_status.h"
#include "services/common/status_macros.h"

namespace nodeagent::network::linux {
namespace {

using nodeagent::linux::ErrnoStatus;
using nodeagent::linux::LastErrnoStatus;

constexpr size_t kBufferSize = 32768;

absl::StatusOr<mnl_socket*> OpenSocket() {
  mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (socket == nullptr) return LastErrnoStatus("open rtnetlink socket");
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    absl::Status s = LastErrnoStatus("bind rtnetlink socket");
    mnl_socket_close(socket);
    return s;
  }
  return socket;
}

bool ParseMac(const std::string& text, uint8_t out[6]) {
  unsigned int b[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) !=
      6) {
    return false;
  }
  for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(b[i]);
  return true;
}

// libmnl's mnl_attr_for_each macros assign void* (C only); these are their C++ forms.
template <typename Fn>
void ForEachAttr(const nlmsghdr* nlh, size_t offset, Fn fn) {
  const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
       mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
       attr = mnl_attr_next(attr)) {
    fn(attr);
  }
}

template <typename Fn>
void ForEachNested(const nlattr* nest, Fn fn) {
  const char* tail =
      static_cast<const char*>(mnl_attr_get_payload(nest)) + mnl_attr_get_payload_len(nest);
  for (auto* attr = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
       mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
       attr = mnl_attr_next(attr)) {
    fn(attr);
  }
}

nlmsghdr* NewMessage(char* buf, uint16_t type, uint16_t flags) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  return nlh;
}

// The body of an RTM_NEWROUTE for "default via `gateway` dev `oif`" (gateway host order).
void PutDefaultRoute(nlmsghdr* nlh, uint32_t gateway, int oif) {
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(gateway));
  mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(oif));
}

// Attributes of one RTM_NEWLINK message, as a LinkInfo.
int ParseLink(const nlmsghdr* nlh, void* data) {
  auto* out = static_cast<std::vector<LinkInfo>*>(data);
  auto* ifm = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  LinkInfo info;
  info.index = ifm->ifi_index;
  info.up = (ifm->ifi_flags & IFF_UP) != 0;
  ForEachAttr(nlh, sizeof(*ifm), [&](const nlattr* attr) {
    switch (mnl_attr_get_type(attr)) {
      case IFLA_IFNAME:
        info.name = mnl_attr_get_str(attr);
        break;
      case IFLA_MASTER:
        info.master = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      case IFLA_ADDRESS:
        if (mnl_attr_get_payload_len(attr) == 6) {
          auto* b = static_cast<const uint8_t*>(mnl_attr_get_payload(attr));
          info.mac =
              absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
        }
        break;
      case IFLA_LINKINFO:
        ForEachNested(attr, [&](const nlattr* nested) {
          if (mnl_attr_get_type(nested) == IFLA_INFO_KIND) info.kind = mnl_attr_get_str(nested);
        });
        break;
      default:
        break;
    }
  });
  out->push_back(std::move(info));
  return MNL_CB_OK;
}

int ParseRoute(const nlmsghdr* nlh, void* data) {
  auto* out = static_cast<std::vector<RouteInfo>*>(data);
  auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  if (rtm->rtm_family != AF_INET || rtm->rtm_table != RT_TABLE_MAIN) return MNL_CB_OK;
  RouteInfo info;
  info.prefix = rtm->rtm_dst_len;
  ForEachAttr(nlh, sizeof(*rtm), [&](const nlattr* attr) {
    switch (mnl_attr_get_type(attr)) {
      case RTA_DST:
        info.dst = ntohl(mnl_attr_get_u32(attr));
        break;
      case RTA_OIF:
        info.oif = static_cast<int>(mnl_attr_get_u32(attr));
        break;
      default:
        break;
    }
  });
  out->push_back(info);
  return MNL_CB_OK;
}

}  // namespace

Netlink::Netlink(mnl_socket* socket)
    : socket_(socket), port_id_(mnl_socket_get_portid(socket)), seq_(1) {}

absl::StatusOr<Netlink> Netlink::Open() {
  NA_ASSIGN_OR_RETURN(mnl_socket * socket, OpenSocket());
  return Netlink(socket);
}

absl::StatusOr<Netlink> Netlink::OpenIn(int netns_fd) {
  // setns(CLONE_NEWNET) changes only the calling thread; a socket keeps the namespace it was
  // made in. A throwaway thread joins the namespace and makes the socket.
  absl::StatusOr<mnl_socket*> socket = absl::InternalError("not run");
  std::thread worker([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      socket = LastErrnoStatus("setns(CLONE_NEWNET)");
      return;
    }
    socket = OpenSocket();
  });
  worker.join();
  if (!socket.ok()) return socket.status();
  return Netlink(*socket);
}

absl::Status Netlink::Request(nlmsghdr* nlh, absl::string_view what) {
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) {
    return LastErrnoStatus(absl::StrCat(what, ": netlink send"));
  }
  char buf[kBufferSize];
  while (true) {
    ssize_t n = mnl_socket_recvfrom(socket_.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus(absl::StrCat(what, ": netlink receive"));
    }
    int rc = mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, port_id_, nullptr, nullptr);
    if (rc < 0) return LastErrnoStatus(what);
    if (rc == MNL_CB_STOP) return absl::OkStatus();
  }
}

namespace {

// Whether a reply buffer holds the end of a dump (NLMSG_DONE, or an error ending it).
bool HasEnd(const char* buf, ssize_t n) {
  int left = static_cast<int>(n);
  for (auto* m = reinterpret_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(m, left);
       m = mnl_nlmsg_next(m, &left)) {
    if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) return true;
  }
  return false;
}

}  // namespace

absl::Status Netlink::Dump(nlmsghdr* nlh, absl::string_view what, mnl_cb_t callback, void* data,
                           const std::function<void()>& reset) {
  // A dump that races a change of the table it lists (a link made or deleted meanwhile, common
  // on a busy host) comes back marked NLM_F_DUMP_INTR, which libmnl reports as EINTR: the rest
  // of it is drained and the dump is asked for again.
  for (int attempt = 0;; ++attempt) {
    nlh->nlmsg_seq = ++seq_;
    if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) {
      return LastErrnoStatus(absl::StrCat(what, ": netlink send"));
    }
    char buf[kBufferSize];
    bool interrupted = false;
    while (true) {
      ssize_t n = mnl_socket_recvfrom(socket_.get(), buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        return LastErrnoStatus(absl::StrCat(what, ": netlink receive"));
      }
      if (interrupted) {
        // Drain up to the end of the interrupted dump.
        if (HasEnd(buf, n)) break;
        continue;
      }
      int rc = mnl_cb_run(buf, static_cast<size_t>(n), nlh->nlmsg_seq, port_id_, callback, data);
      if (rc < 0 && errno == EINTR && reset && attempt < 10) {
        interrupted = true;
        if (HasEnd(buf, n)) break;
        continue;
      }
      if (rc < 0) return LastErrnoStatus(what);
      if (rc == MNL_CB_STOP) return absl::OkStatus();
    }
    reset();
  }
}

absl::Status Netlink::CreateBridge(const std::string& name, int mtu) {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  if (mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, static_cast<uint32_t>(mtu));
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(nlh, linkinfo);
  return Request(nlh, absl::StrCat("create bridge \"", name, "\""));
}

absl::Status Netlink::CreateVeth(const VethOptions& options) {
  std::string what =
      absl::StrCat("create veth \"", options.host_name, "\" <-> \"", options.peer_name, "\"");
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  // The host end comes up at once; the peer is brought up inside its namespace.
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, options.host_name.c_str());
  if (options.mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, static_cast<uint32_t>(options.mtu));
  if (options.master_index > 0) {
    mnl_attr_put_u32(nlh, IFLA_MASTER, static_cast<uint32_t>(options.master_index));
  }
  nlattr* linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* info_data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  auto* peer_ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  peer_ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, options.peer_name.c_str());
  if (options.mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, static_cast<uint32_t>(options.mtu));
  if (options.peer_netns_fd >= 0) {
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(options.peer_netns_fd));
  }
  if (!options.peer_mac.empty()) {
    uint8_t mac[6];
    if (!ParseMac(options.peer_mac, mac)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": bad MAC address \"", options.peer_mac, "\""));
    }
    mnl_attr_put(nlh, IFLA_ADDRESS, sizeof(mac), mac);
  }
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, info_data);
  mnl_attr_nest_end(nlh, linkinfo);
  return Request(nlh, what);
}

absl::StatusOr<LinkInfo> Netlink::GetLink(const std::string& name) {
  char buf[kBufferSize];
  // NLM_F_ACK: the reply to a single get carries no NLMSG_DONE; the ack ends it.
  nlmsghdr* nlh = NewMessage(buf, RTM_GETLINK, NLM_F_ACK);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  std::vector<LinkInfo> links;
  absl::Status s = Dump(nlh, absl::StrCat("get link \"", name, "\""), ParseLink, &links);
  if (!s.ok()) {
    if (absl::IsNotFound(s) || absl::StrContains(s.message(), "No such device")) {
      return absl::NotFoundError(absl::StrCat("link \"", name, "\": no such device"));
    }
    return s;
  }
  if (links.empty()) return absl::NotFoundError(absl::StrCat("link \"", name, "\": not found"));
  return links.front();
}

absl::StatusOr<std::vector<LinkInfo>> Netlink::ListLinks() {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_GETLINK, NLM_F_DUMP);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  std::vector<LinkInfo> links;
  NA_RETURN_IF_ERROR(Dump(nlh, "list links", ParseLink, &links, [&] { links.clear(); }));
  return links;
}

absl::Status Netlink::SetUp(int index) {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_NEWLINK, 0);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  return Request(nlh, absl::StrCat("set link ", index, " up"));
}

absl::Status Netlink::DeleteLink(const std::string& name) {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_DELLINK, 0);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  absl::Status s = Request(nlh, absl::StrCat("delete link \"", name, "\""));
  if (!s.ok() && absl::StrContains(s.message(), "No such device")) {
    return absl::NotFoundError(s.message());
  }
  return s;
}

absl::Status Netlink::AddAddress(int index, uint32_t ip, int prefix) {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  uint32_t be = htonl(ip);
  mnl_attr_put_u32(nlh, IFA_LOCAL, be);
  mnl_attr_put_u32(nlh, IFA_ADDRESS, be);
  if (prefix < 31) mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(ip | (~0u >> prefix)));
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &be, text, sizeof(text));
  absl::Status s =
      Request(nlh, absl::StrCat("add address ", text, "/", prefix, " to link ", index));
  if (!s.ok() && absl::StrContains(s.message(), "File exists")) return absl::OkStatus();
  return s;
}

absl::Status Netlink::AddDefaultRoute(uint32_t gateway, int oif) {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  PutDefaultRoute(nlh, gateway, oif);
  absl::Status s = Request(nlh, "add default route");
  if (!s.ok() && absl::StrContains(s.message(), "File exists")) return absl::OkStatus();
  return s;
}

absl::Status Netlink::Batch(char* buf, size_t len, int count, const std::string* what,
                            const bool* exist_ok) {
  uint32_t first_seq = 0;
  size_t offset = 0;
  for (int i = 0; i < count; ++i) {
    auto* nlh = reinterpret_cast<nlmsghdr*>(buf + offset);
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    if (i == 0) first_seq = nlh->nlmsg_seq;
    offset += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  if (mnl_socket_sendto(socket_.get(), buf, len) < 0) {
    return LastErrnoStatus(absl::StrCat(what[0], ": netlink send"));
  }
  // The kernel handles the requests in order and acknowledges each (success or error).
  absl::Status result;
  char reply[kBufferSize];
  for (int done = 0; done < count;) {
    ssize_t n = mnl_socket_recvfrom(socket_.get(), reply, sizeof(reply));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LastErrnoStatus(absl::StrCat(what[done], ": netlink receive"));
    }
    int left = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(reply); mnl_nlmsg_ok(nlh, left);
         nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != port_id_) continue;
      uint32_t index = nlh->nlmsg_seq - first_seq;
      if (index >= static_cast<uint32_t>(count)) continue;
      ++done;
      auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      int code = -err->error;
      if (code == 0 || (code == EEXIST && exist_ok[index])) continue;
      result.Update(ErrnoStatus(code, what[index]));
    }
  }
  return result;
}

absl::Status Netlink::ConfigureInterface(int index, uint32_t ip, int prefix, uint32_t gateway) {
  char buf[kBufferSize];
  size_t len = 0;
  auto next = [&](uint16_t type, uint16_t flags) { return NewMessage(buf + len, type, flags); };
  uint32_t be = htonl(ip);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &be, text, sizeof(text));
  std::string what[3] = {absl::StrCat("add address ", text, "/", prefix, " to link ", index),
                         absl::StrCat("set link ", index, " up"), "add default route"};
  bool exist_ok[3] = {true, false, true};

  nlmsghdr* nlh = next(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  mnl_attr_put_u32(nlh, IFA_LOCAL, be);
  mnl_attr_put_u32(nlh, IFA_ADDRESS, be);
  if (prefix < 31) mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(ip | (~0u >> prefix)));
  len += NLMSG_ALIGN(nlh->nlmsg_len);

  nlh = next(RTM_NEWLINK, 0);
  auto* ifm = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = index;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;
  len += NLMSG_ALIGN(nlh->nlmsg_len);

  int count = 2;
  if (gateway != 0) {
    nlh = next(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    PutDefaultRoute(nlh, gateway, index);
    len += NLMSG_ALIGN(nlh->nlmsg_len);
    count = 3;
  }
  return Batch(buf, len, count, what, exist_ok);
}

absl::StatusOr<std::vector<RouteInfo>> Netlink::ListRoutes() {
  char buf[kBufferSize];
  nlmsghdr* nlh = NewMessage(buf, RTM_GETROUTE, NLM_F_DUMP);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  std::vector<RouteInfo> routes;
  NA_RETURN_IF_ERROR(Dump(nlh, "list routes", ParseRoute, &routes, [&] { routes.clear(); }));
  return routes;
}

}  // namespace nodeagent::network::linux
