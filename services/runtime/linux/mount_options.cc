#include "services/runtime/linux/mount_options.h"

#include <sys/mount.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {
namespace {

struct FlagOption {
  absl::string_view name;
  bool clear;  // The option turns the flag off ("rw", "suid", ...).
  unsigned long flag;
};

// The option names mount(8) and runc accept. "defaults" is a no-op kept for fstab habits.
constexpr FlagOption kFlagOptions[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},
    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},
    {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"noatime", false, MS_NOATIME},
    {"atime", true, MS_NOATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"diratime", true, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"silent", false, MS_SILENT},
    {"loud", true, MS_SILENT},
    {"bind", false, MS_BIND},
    {"rbind", false, MS_BIND | MS_REC},
};

struct PropagationOption {
  absl::string_view name;
  unsigned long flags;
};

constexpr PropagationOption kPropagationOptions[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

struct FlagName {
  unsigned long flag;
  absl::string_view name;
};

constexpr FlagName kFlagNames[] = {
    {MS_RDONLY, "MS_RDONLY"},
    {MS_NOSUID, "MS_NOSUID"},
    {MS_NODEV, "MS_NODEV"},
    {MS_NOEXEC, "MS_NOEXEC"},
    {MS_SYNCHRONOUS, "MS_SYNCHRONOUS"},
    {MS_REMOUNT, "MS_REMOUNT"},
    {MS_MANDLOCK, "MS_MANDLOCK"},
    {MS_DIRSYNC, "MS_DIRSYNC"},
    {MS_NOATIME, "MS_NOATIME"},
    {MS_NODIRATIME, "MS_NODIRATIME"},
    {MS_BIND, "MS_BIND"},
    {MS_MOVE, "MS_MOVE"},
    {MS_REC, "MS_REC"},
    {MS_SILENT, "MS_SILENT"},
    {MS_UNBINDABLE, "MS_UNBINDABLE"},
    {MS_PRIVATE, "MS_PRIVATE"},
    {MS_SLAVE, "MS_SLAVE"},
    {MS_SHARED, "MS_SHARED"},
    {MS_RELATIME, "MS_RELATIME"},
    {MS_STRICTATIME, "MS_STRICTATIME"},
};

}  // namespace

bool MountOptions::IsBind() const { return (flags & MS_BIND) != 0; }

absl::StatusOr<MountOptions> ParseMountOptions(const std::vector<std::string>& options) {
  MountOptions out;
  std::vector<absl::string_view> data;
  for (const std::string& option : options) {
    if (option.empty()) return absl::InvalidArgumentError("empty mount option");
    bool known = false;
    for (const FlagOption& f : kFlagOptions) {
      if (option != f.name) continue;
      if (f.clear) {
        out.flags &= ~f.flag;
      } else {
        out.flags |= f.flag;
      }
      known = true;
      break;
    }
    for (const PropagationOption& p : kPropagationOptions) {
      if (known || option != p.name) continue;
      // One propagation type per mount: the last one named wins, like the flags above.
      out.propagation = p.flags;
      known = true;
    }
    if (!known) data.push_back(option);
  }
  out.data = absl::StrJoin(data, ",");
  return out;
}

std::string MountFlagsToString(unsigned long flags) {
  if (flags == 0) return "0";
  std::string out;
  for (const FlagName& f : kFlagNames) {
    if ((flags & f.flag) == 0) continue;
    absl::StrAppend(&out, out.empty() ? "" : "|", f.name);
    flags &= ~f.flag;
  }
  if (flags != 0) absl::StrAppend(&out, out.empty() ? "" : "|", "0x", absl::Hex(flags));
  return out;
}

}  // namespace nodeagent::runtime
