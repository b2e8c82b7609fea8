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

}  // namespace nodeagent::nodectl
