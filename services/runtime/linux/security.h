#pragma once

// A container process's privileges: its user, capabilities, seccomp filter and no_new_privs,
// Docker's defaults unless privileged. The pure parts (names, /etc/passwd parsing) are
// unit-tested; the Apply* functions run in node-shim's child just before exec.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/runtime/linux/seccomp_profile.h"

namespace nodeagent::runtime {

// Docker's default capability set (moby's oci/caps/defaults.go).
inline constexpr const char* kDefaultCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE"};

// Docker's masked and read-only paths (moby's oci/defaults.go).
inline constexpr const char* kDefaultMaskedPaths[] = {
    "/proc/asound",     "/proc/acpi",        "/proc/interrupts",
    "/proc/kcore",      "/proc/keys",        "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",       "/sys/firmware",     "/sys/devices/virtual/powercap"};
inline constexpr const char* kDefaultReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq",
                                                        "/proc/sys", "/proc/sysrq-trigger"};

// The capability number for "NET_ADMIN" / "CAP_NET_ADMIN" (any case); INVALID_ARGUMENT for an
// unknown name.
absl::StatusOr<int> CapabilityFromName(absl::string_view name);
// "CAP_NET_ADMIN" for 12; "CAP_<n>" for numbers the table does not know.
std::string CapabilityName(int cap);

// Bit set (1 << cap) of the capabilities a container gets: every known one when privileged,
// else Docker's defaults, plus `add`, minus `drop` ("ALL" in either means every capability).
absl::StatusOr<uint64_t> EffectiveCapabilities(const std::vector<std::string>& add,
                                               const std::vector<std::string>& drop,
                                               bool privileged);

struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // Supplementary groups.
  std::string home;           // From /etc/passwd; empty if the user has no entry.
};

// Resolves "", "uid", "uid:gid", "name", "name:group", "uid:group", ... against the contents
// of the container's /etc/passwd and /etc/group (either may be empty: numeric ids still work;
// a name then is NOT_FOUND). Supplementary groups: every group of /etc/group listing the
// user's name, as Docker does; none for a user without a passwd entry.
absl::StatusOr<ResolvedUser> ResolveUser(absl::string_view spec, absl::string_view passwd,
                                         absl::string_view group);

// Reads /etc/passwd and /etc/group of the current root (a missing file counts as empty) and
// calls ResolveUser.
absl::StatusOr<ResolvedUser> ResolveUserInRoot(absl::string_view spec);

// Sets no_new_privs (PR_SET_NO_NEW_PRIVS).
absl::Status SetNoNewPrivs();

// Installs the default seccomp filter (modelled on Docker's default profile, as a deny list
// of what that profile blocks; EPERM; clone3 gets ENOSYS so that libcs fall back to clone,
// whose namespace flags are checked). Syscalls that Docker allows with a capability stay
// allowed when `caps` has it. Non-native (32-bit) syscalls kill the process. Must run while
// the process may still install a filter (no_new_privs set, or CAP_SYS_ADMIN held).
absl::Status InstallDefaultSeccomp(uint64_t caps);

// Installs a Docker-format profile (seccomp_profile.h): rules whose includes/excludes
// capabilities or arches do not fit `caps` / this machine are left out, as Docker does; a rule
// naming a syscall this libseccomp does not know is skipped; every architecture the profile
// lists is added to the filter. Same ordering requirements as InstallDefaultSeccomp.
absl::Status InstallSeccompProfile(const SeccompProfile& profile, uint64_t caps);

// Switches to `user` and keeps exactly `caps`: bounding set reduced to `caps`; permitted and
// effective = `caps`; inheritable and ambient empty (as Docker since CVE-2022-24769). A
// non-root user keeps them only until exec, as under Docker (no ambient capabilities).
absl::Status ApplyUserAndCapabilities(const ResolvedUser& user, uint64_t caps);

}  // namespace nodeagent::runtime
