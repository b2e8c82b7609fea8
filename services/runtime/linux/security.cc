#include "services/runtime/linux/security.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/status_macros.h"

namespace nodeagent::runtime {
namespace {

using linux::LastErrnoStatus;

// Index = capability number (linux/capability.h).
constexpr const char* kCapabilityNames[] = {"CAP_CHOWN",
                                            "CAP_DAC_OVERRIDE",
                                            "CAP_DAC_READ_SEARCH",
                                            "CAP_FOWNER",
                                            "CAP_FSETID",
                                            "CAP_KILL",
                                            "CAP_SETGID",
                                            "CAP_SETUID",
                                            "CAP_SETPCAP",
                                            "CAP_LINUX_IMMUTABLE",
                                            "CAP_NET_BIND_SERVICE",
                                            "CAP_NET_BROADCAST",
                                            "CAP_NET_ADMIN",
                                            "CAP_NET_RAW",
                                            "CAP_IPC_LOCK",
                                            "CAP_IPC_OWNER",
                                            "CAP_SYS_MODULE",
                                            "CAP_SYS_RAWIO",
                                            "CAP_SYS_CHROOT",
                                            "CAP_SYS_PTRACE",
                                            "CAP_SYS_PACCT",
                                            "CAP_SYS_ADMIN",
                                            "CAP_SYS_BOOT",
                                            "CAP_SYS_NICE",
                                            "CAP_SYS_RESOURCE",
                                            "CAP_SYS_TIME",
                                            "CAP_SYS_TTY_CONFIG",
                                            "CAP_MKNOD",
                                            "CAP_LEASE",
                                            "CAP_AUDIT_WRITE",
                                            "CAP_AUDIT_CONTROL",
                                            "CAP_SETFCAP",
                                            "CAP_MAC_OVERRIDE",
                                            "CAP_MAC_ADMIN",
                                            "CAP_SYSLOG",
                                            "CAP_WAKE_ALARM",
                                            "CAP_BLOCK_SUSPEND",
                                            "CAP_AUDIT_READ",
                                            "CAP_PERFMON",
                                            "CAP_BPF",
                                            "CAP_CHECKPOINT_RESTORE"};
constexpr int kNumCapabilities = sizeof(kCapabilityNames) / sizeof(kCapabilityNames[0]);
static_assert(kNumCapabilities == CAP_LAST_CAP + 1);

constexpr uint64_t kAllCapabilities = (uint64_t{1} << kNumCapabilities) - 1;

bool Has(uint64_t caps, int cap) { return (caps >> cap) & 1; }

struct PasswdEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

std::vector<PasswdEntry> ParsePasswd(absl::string_view text) {
  std::vector<PasswdEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    PasswdEntry e;
    if (f.size() < 7 || !absl::SimpleAtoi(f[2], &e.uid) || !absl::SimpleAtoi(f[3], &e.gid)) {
      continue;  // Comments and malformed lines, as getpwnam skips them.
    }
    e.name = std::string(f[0]);
    e.home = std::string(f[5]);
    out.push_back(std::move(e));
  }
  return out;
}

struct GroupEntry {
  std::string name;
  gid_t gid = 0;
  std::vector<std::string> members;
};

std::vector<GroupEntry> ParseGroup(absl::string_view text) {
  std::vector<GroupEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    GroupEntry e;
    if (f.size() < 4 || !absl::SimpleAtoi(f[2], &e.gid)) continue;
    e.name = std::string(f[0]);
    for (absl::string_view m : absl::StrSplit(f[3], ',', absl::SkipEmpty())) {
      e.members.emplace_back(m);
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::string> ReadIfExists(const char* path) {
  auto text = linux::ReadFile(path);
  if (!text.ok() && absl::IsNotFound(text.status())) return std::string();
  return text;
}

struct SeccompDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

}  // namespace

absl::StatusOr<int> CapabilityFromName(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  if (!absl::StartsWith(upper, "CAP_")) upper = absl::StrCat("CAP_", upper);
  for (int i = 0; i < kNumCapabilities; ++i) {
    if (upper == kCapabilityNames[i]) return i;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", name, "\""));
}

std::string CapabilityName(int cap) {
  if (cap >= 0 && cap < kNumCapabilities) return kCapabilityNames[cap];
  return absl::StrCat("CAP_", cap);
}

absl::StatusOr<uint64_t> EffectiveCapabilities(const std::vector<std::string>& add,
                                               const std::vector<std::string>& drop,
                                               bool privileged) {
  uint64_t caps = 0;
  if (privileged) {
    caps = kAllCapabilities;
  } else {
    for (const char* name : kDefaultCapabilities) caps |= uint64_t{1} << *CapabilityFromName(name);
  }
  for (const std::string& name : add) {
    if (absl::EqualsIgnoreCase(name, "ALL")) {
      caps = kAllCapabilities;
      continue;
    }
    NA_ASSIGN_OR_RETURN(int cap, CapabilityFromName(name));
    caps |= uint64_t{1} << cap;
  }
  for (const std::string& name : drop) {
    if (absl::EqualsIgnoreCase(name, "ALL")) {
      caps = 0;
      continue;
    }
    NA_ASSIGN_OR_RETURN(int cap, CapabilityFromName(name));
    caps &= ~(uint64_t{1} << cap);
  }
  return caps;
}

absl::StatusOr<ResolvedUser> ResolveUser(absl::string_view spec, absl::string_view passwd_text,
                                         absl::string_view group_text) {
  ResolvedUser user;
  if (spec.empty()) spec = "0";
  absl::string_view user_part = spec;
  absl::string_view group_part;
  bool has_group = false;
  if (size_t colon = spec.find(':'); colon != absl::string_view::npos) {
    user_part = spec.substr(0, colon);
    group_part = spec.substr(colon + 1);
    has_group = true;
    if (user_part.empty() || group_part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("user \"", spec, "\": empty user or group"));
    }
  }
  std::vector<PasswdEntry> passwd = ParsePasswd(passwd_text);
  const PasswdEntry* entry = nullptr;
  uint32_t number = 0;
  if (absl::SimpleAtoi(user_part, &number)) {
    user.uid = number;
    for (const PasswdEntry& e : passwd) {
      if (e.uid == user.uid) {
        entry = &e;
        break;
      }
    }
  } else {
    for (const PasswdEntry& e : passwd) {
      if (e.name == user_part) {
        entry = &e;
        break;
      }
    }
    if (entry == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("user \"", user_part, "\": no such user in the container's /etc/passwd"));
    }
    user.uid = entry->uid;
  }
  if (entry != nullptr) {
    user.gid = entry->gid;
    user.home = entry->home;
  }
  std::vector<GroupEntry> groups = ParseGroup(group_text);
  if (has_group) {
    if (absl::SimpleAtoi(group_part, &number)) {
      user.gid = number;
    } else {
      const GroupEntry* g = nullptr;
      for (const GroupEntry& e : groups) {
        if (e.name == group_part) {
          g = &e;
          break;
        }
      }
      if (g == nullptr) {
        return absl::NotFoundError(absl::StrCat("group \"", group_part,
                                                "\": no such group in the container's /etc/group"));
      }
      user.gid = g->gid;
    }
  }
  if (entry != nullptr) {
    for (const GroupEntry& g : groups) {
      for (const std::string& member : g.members) {
        if (member == entry->name && g.gid != user.gid) {
          user.groups.push_back(g.gid);
          break;
        }
      }
    }
  }
  return user;
}

absl::StatusOr<ResolvedUser> ResolveUserInRoot(absl::string_view spec) {
  // Only names need the files; "uid:gid" must work in an image without /etc.
  NA_ASSIGN_OR_RETURN(std::string passwd, ReadIfExists("/etc/passwd"));
  NA_ASSIGN_OR_RETURN(std::string group, ReadIfExists("/etc/group"));
  return ResolveUser(spec, passwd, group);
}

absl::Status SetNoNewPrivs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return LastErrnoStatus("prctl PR_SET_NO_NEW_PRIVS");
  }
  return absl::OkStatus();
}

absl::Status InstallDefaultSeccomp(uint64_t caps) {
  std::unique_ptr<void, SeccompDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  // Keep the no_new_privs the caller chose: libseccomp would otherwise set it.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc != 0) {
    return linux::ErrnoStatus(-rc, "seccomp_attr_set NNP");
  }
  struct Group {
    int cap;  // -1: blocked whatever the capabilities.
    std::vector<const char*> syscalls;
  };
  const Group groups[] = {
      {-1,
       {"add_key", "keyctl", "request_key", "userfaultfd", "lookup_dcookie", "nfsservctl", "uselib",
        "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "create_module", "get_kernel_syms",
        "query_module", "io_uring_setup", "io_uring_enter", "io_uring_register"}},
      {CAP_SYS_ADMIN,
       {"mount",         "umount",          "umount2",           "pivot_root",    "setns",
        "unshare",       "fsopen",          "fsconfig",          "fsmount",       "fspick",
        "move_mount",    "open_tree",       "mount_setattr",     "quotactl",      "quotactl_fd",
        "swapon",        "swapoff",         "sethostname",       "setdomainname", "bpf",
        "fanotify_init", "perf_event_open", "name_to_handle_at", "lookup_dcookie"}},
      {CAP_SYS_MODULE, {"init_module", "finit_module", "delete_module"}},
      {CAP_SYS_BOOT, {"reboot", "kexec_load", "kexec_file_load"}},
      {CAP_SYS_PTRACE, {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp"}},
      {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex"}},
      {CAP_SYS_RAWIO, {"ioperm", "iopl"}},
      {CAP_SYS_PACCT, {"acct"}},
      {CAP_SYS_NICE, {"get_mempolicy", "mbind", "set_mempolicy", "move_pages"}},
      {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}},
      {CAP_SYSLOG, {"syslog"}},
  };
  for (const Group& g : groups) {
    // CAP_SYS_ADMIN allows what the narrower capabilities allow, as in Docker's profile.
    if (g.cap >= 0 && (Has(caps, g.cap) || Has(caps, CAP_SYS_ADMIN))) continue;
    for (const char* name : g.syscalls) {
      int nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR) continue;  // Not on this architecture.
      if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0); rc != 0) {
        return linux::ErrnoStatus(-rc, absl::StrCat("seccomp rule for ", name));
      }
    }
  }
  if (!Has(caps, CAP_SYS_ADMIN)) {
    // New namespaces through clone: any namespace flag set is EPERM (Docker's rule), and
    // clone3, whose flags sit in memory a filter cannot read, is ENOSYS.
    constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
                                            CLONE_NEWUSER,  CLONE_NEWPID, CLONE_NEWNET,
                                            CLONE_NEWCGROUP};
    for (uint64_t flag : kNamespaceFlags) {
      if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
          rc != 0) {
        return linux::ErrnoStatus(-rc, "seccomp rule for clone");
      }
    }
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        rc != 0) {
      return linux::ErrnoStatus(-rc, "seccomp rule for clone3");
    }
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    return linux::ErrnoStatus(-rc, "load seccomp filter");
  }
  return absl::OkStatus();
}

namespace {

// Docker's arch names in includes/excludes are Go's: this machine's.
#if defined(__x86_64__)
constexpr absl::string_view kGoArch = "amd64";
#elif defined(__aarch64__)
constexpr absl::string_view kGoArch = "arm64";
#else
constexpr absl::string_view kGoArch = "";
#endif

bool Contains(const std::vector<std::string>& list, absl::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Whether a rule applies here (moby's profile.go: every included capability present, no
// excluded one, this arch included if any are listed and not excluded).
absl::StatusOr<bool> RuleApplies(const SeccompRule& rule, uint64_t caps) {
  for (const std::string& name : rule.include_caps) {
    NA_ASSIGN_OR_RETURN(int cap, CapabilityFromName(name));
    if (!Has(caps, cap)) return false;
  }
  for (const std::string& name : rule.exclude_caps) {
    NA_ASSIGN_OR_RETURN(int cap, CapabilityFromName(name));
    if (Has(caps, cap)) return false;
  }
  if (!rule.include_arches.empty() && !Contains(rule.include_arches, kGoArch)) return false;
  return !Contains(rule.exclude_arches, kGoArch);
}

absl::StatusOr<scmp_compare> CompareOp(absl::string_view op) {
  if (op == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (op == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (op == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (op == "SCMP_CMP_EQ") return SCMP_CMP_EQ;
  if (op == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (op == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (op == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  return absl::InvalidArgumentError(absl::StrCat("seccomp operator \"", op, "\": unknown"));
}

}  // namespace

absl::Status InstallSeccompProfile(const SeccompProfile& profile, uint64_t caps) {
  NA_ASSIGN_OR_RETURN(uint32_t default_action,
                      SeccompAction(profile.default_action, profile.default_errno_ret));
  std::unique_ptr<void, SeccompDeleter> ctx(seccomp_init(default_action));
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc != 0) {
    return linux::ErrnoStatus(-rc, "seccomp_attr_set NNP");
  }
  for (const std::string& arch_name : profile.architectures) {
    // "SCMP_ARCH_X86_64" -> libseccomp's "x86_64".
    std::string lower = absl::AsciiStrToLower(arch_name);
    std::string name(absl::StripPrefix(lower, "scmp_arch_"));
    uint32_t arch = seccomp_arch_resolve_name(name.c_str());
    if (arch == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("seccomp profile: architecture \"", arch_name, "\": unknown"));
    }
    if (int rc = seccomp_arch_add(ctx.get(), arch); rc != 0 && rc != -EEXIST) {
      return linux::ErrnoStatus(-rc, absl::StrCat("seccomp: add architecture ", arch_name));
    }
  }
  for (const SeccompRule& rule : profile.syscalls) {
    NA_ASSIGN_OR_RETURN(bool applies, RuleApplies(rule, caps));
    if (!applies) continue;
    NA_ASSIGN_OR_RETURN(uint32_t action, SeccompAction(rule.action, rule.errno_ret));
    if (action == default_action) continue;  // libseccomp refuses a rule that changes nothing.
    std::vector<scmp_arg_cmp> args;
    for (const SeccompArg& a : rule.args) {
      NA_ASSIGN_OR_RETURN(scmp_compare op, CompareOp(a.op));
      args.push_back({a.index, op, a.value, a.value_two});
    }
    for (const std::string& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // Not a syscall this libseccomp knows, as Docker.
      int rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned int>(args.size()),
                                      args.empty() ? nullptr : args.data());
      if (rc != 0 && rc != -EEXIST) {
        return linux::ErrnoStatus(-rc, absl::StrCat("seccomp profile: rule for ", name));
      }
    }
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    return linux::ErrnoStatus(-rc, "load seccomp profile");
  }
  return absl::OkStatus();
}

absl::Status ApplyUserAndCapabilities(const ResolvedUser& user, uint64_t caps) {
  // Nobody gets more than node-shim has ("privileged" on a host that withholds some).
  struct __user_cap_header_struct get_header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct current[2] = {};
  if (::syscall(SYS_capget, &get_header, current) != 0) return LastErrnoStatus("capget");
  caps &= static_cast<uint64_t>(current[0].permitted) | static_cast<uint64_t>(current[1].permitted)
                                                            << 32;
  // Bounding set first: dropping needs CAP_SETPCAP, which may not survive what follows.
  for (int cap = 0;; ++cap) {
    int in_bounding = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (in_bounding < 0) break;  // EINVAL: past the kernel's last capability.
    if (in_bounding == 1 && !Has(caps, cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return LastErrnoStatus(absl::StrCat("drop ", CapabilityName(cap), " from the bounding set"));
    }
  }
  // Keep the permitted set across the uid change; capset below sets it exactly.
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return LastErrnoStatus("prctl PR_SET_KEEPCAPS");
  if (::setgroups(user.groups.size(), user.groups.data()) != 0) {
    return LastErrnoStatus(absl::StrCat("setgroups for uid ", user.uid));
  }
  if (::setresgid(user.gid, user.gid, user.gid) != 0) {
    return LastErrnoStatus(absl::StrCat("setgid ", user.gid));
  }
  if (::setresuid(user.uid, user.uid, user.uid) != 0) {
    return LastErrnoStatus(absl::StrCat("setuid ", user.uid));
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = data[i].permitted = static_cast<uint32_t>(caps >> (32 * i));
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return LastErrnoStatus("capset");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return LastErrnoStatus("clear ambient capabilities");
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return LastErrnoStatus("prctl PR_SET_KEEPCAPS");
  return absl::OkStatus();
}

}  // namespace nodeagent::runtime
