#include "cmd/nodectl/run_flags.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace nodeagent::nodectl {

absl::StatusOr<int64_t> ParseMemoryBytes(absl::string_view text) {
  std::string value = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (!value.empty() && value.back() == 'b') value.pop_back();
  double multiplier = 1;
  if (!value.empty()) {
    switch (value.back()) {
      case 'k':
        multiplier = 1024.0;
        break;
      case 'm':
        multiplier = 1024.0 * 1024;
        break;
      case 'g':
        multiplier = 1024.0 * 1024 * 1024;
        break;
      case 't':
        multiplier = 1024.0 * 1024 * 1024 * 1024;
        break;
      default:
        break;
    }
    if (multiplier != 1) value.pop_back();
  }
  double number = 0;
  if (value.empty() || !absl::SimpleAtod(value, &number) || !std::isfinite(number)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid memory size \"", text, "\": want a number with k, m or g"));
  }
  double bytes = number * multiplier;
  if (bytes < 6 * 1024 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory limit \"", text, "\" is below the minimum of 6m"));
  }
  if (bytes > 9.0e18) {
    return absl::InvalidArgumentError(absl::StrCat("memory limit \"", text, "\" is absurd"));
  }
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<CpuQuota> CpuQuotaFromCpus(absl::string_view text, int host_cpus) {
  double cpus = 0;
  if (!absl::SimpleAtod(text, &cpus) || !std::isfinite(cpus) || cpus <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --cpus \"", text, "\": want a positive number like 0.5"));
  }
  if (cpus > host_cpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpus ", text, " is more than the ", host_cpus, " CPUs this host has"));
  }
  CpuQuota quota;
  quota.quota_us = static_cast<int64_t>(std::llround(cpus * quota.period_us));
  if (quota.quota_us < 1000) {
    return absl::InvalidArgumentError(absl::StrCat("--cpus ", text, " is below 0.01"));
  }
  return quota;
}

absl::StatusOr<CpuQuota> CpuQuotaFromPercent(int percent, int host_cpus) {
  if (percent <= 0 || percent > host_cpus * 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu-percent ", percent, " is outside 1..", host_cpus * 100));
  }
  CpuQuota quota;
  quota.quota_us = quota.period_us * percent / 100;
  return quota;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& entries) {
  std::map<std::string, std::string> labels;
  for (const std::string& entry : entries) {
    size_t eq = entry.find('=');
    std::string key = entry.substr(0, eq);
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label \"", entry, "\": want k=v"));
    }
    labels[key] = eq == std::string::npos ? "" : entry.substr(eq + 1);
  }
  return labels;
}

}  // namespace nodeagent::nodectl
