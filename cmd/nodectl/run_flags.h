#pragma once

// Parsing of `run`/`create` flag values that need more than CLI11 gives: sizes with
// suffixes, CPU shares, labels. Pure functions, unit-tested.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::nodectl {

// "512", "64k", "100m", "1.5g" (binary units, as Docker's -m) -> bytes. At least 6 MiB.
absl::StatusOr<int64_t> ParseMemoryBytes(absl::string_view text);

struct CpuQuota {
  int64_t quota_us = 0;
  int64_t period_us = 100000;
};
// --cpus 0.5 -> 50000/100000; bounded by the host's CPUs.
absl::StatusOr<CpuQuota> CpuQuotaFromCpus(absl::string_view text, int host_cpus);
// --cpu-percent 50 -> 50000/100000 (percent of one CPU, up to host_cpus*100).
absl::StatusOr<CpuQuota> CpuQuotaFromPercent(int percent, int host_cpus);

// "k=v" entries -> map; "k" alone means an empty value.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& entries);

// A mount as the runtime takes it (nodeagent.v1.Mount).
struct MountFlag {
  std::string type;  // "bind", "volume" or "tmpfs".
  std::string source;
  std::string destination;
  std::vector<std::string> options;
};

// -v HOST:CTR[:ro|rw] (HOST absolute: a bind) or -v NAME:CTR[:ro] (a named volume).
absl::StatusOr<MountFlag> ParseVolumeFlag(absl::string_view text);
// --tmpfs CTR[:size=64m,mode=1777,...].
absl::StatusOr<MountFlag> ParseTmpfsFlag(absl::string_view text);
// --mount type=bind|volume|tmpfs,src=..,dst=..[,readonly][,bind-propagation=rslave]
//         [,tmpfs-size=BYTES][,tmpfs-mode=OCTAL]
absl::StatusOr<MountFlag> ParseMountFlag(absl::string_view text);

// --uidmap / --gidmap CONTAINER:HOST:SIZE (podman's syntax) -> one id mapping.
struct IdMapFlag {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};
absl::StatusOr<IdMapFlag> ParseIdMapFlag(absl::string_view text);

// --detach-keys, Docker's syntax: comma-separated keys, each "ctrl-X" (X a letter or one of
// @[\\]^_) or a single character. "ctrl-p,ctrl-q" (the default) -> "\x10\x11".
absl::StatusOr<std::string> ParseDetachKeys(absl::string_view text);

}  // namespace nodeagent::nodectl
