#pragma once

// Docker's (moby's) JSON seccomp profile format, as `--security-opt seccomp=FILE` takes it:
//   {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
//    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
//    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
//                  "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
//                  "includes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["amd64"]},
//                  "excludes": {...}}]}
// Parsing is pure (the runtime checks a profile at create; node-shim parses it again before
// installing it with libseccomp, security.h). Unknown syscall names are skipped at install
// time, as Docker does (a profile names syscalls of every kernel version); unknown actions,
// operators and architectures are errors. "archMap", "flags" and "listenerPath" are ignored.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

struct SeccompArg {
  uint32_t index = 0;  // 0-5.
  uint64_t value = 0;
  uint64_t value_two = 0;  // The mask's datum for SCMP_CMP_MASKED_EQ.
  std::string op;          // "SCMP_CMP_EQ", ...
};

struct SeccompRule {
  std::vector<std::string> names;
  std::string action;  // "SCMP_ACT_ERRNO", ...
  int errno_ret = -1;  // -1: absent (EPERM for SCMP_ACT_ERRNO).
  std::vector<SeccompArg> args;
  std::vector<std::string> include_caps, exclude_caps;      // "CAP_SYS_ADMIN".
  std::vector<std::string> include_arches, exclude_arches;  // Go names: "amd64", "arm64".
};

struct SeccompProfile {
  std::string default_action;
  int default_errno_ret = -1;
  std::vector<std::string> architectures;  // "SCMP_ARCH_X86_64", ...
  std::vector<SeccompRule> syscalls;
};

// True for what the --security-opt seccomp= value holds when it is a profile, not a name.
bool IsSeccompProfileJson(absl::string_view text);

// INVALID_ARGUMENT naming the bad field ("seccomp profile: syscalls[2].action \"X\": unknown
// action") for malformed JSON, unknown actions or operators, an arg index over 5.
absl::StatusOr<SeccompProfile> ParseSeccompProfile(absl::string_view json);

// The libseccomp token for a Docker action name (SCMP_ACT_ALLOW -> 0x7fff0000 ...), with
// `errno_ret` for SCMP_ACT_ERRNO (EPERM when -1) and SCMP_ACT_TRACE; INVALID_ARGUMENT for an
// unknown name.
absl::StatusOr<uint32_t> SeccompAction(absl::string_view name, int errno_ret);

}  // namespace nodeagent::runtime
