#pragma once

// core's HostReader over the real /proc and /sys.

#include <memory>
#include <string>

#include "services/metrics/core/readers.h"

namespace nodeagent::metrics {

// `proc` and `sys` are the roots of procfs and sysfs ("/proc", "/sys"; fixtures in tests).
std::unique_ptr<HostReader> NewHostReader(std::string proc = "/proc", std::string sys = "/sys");

}  // namespace nodeagent::metrics
