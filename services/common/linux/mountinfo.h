#pragma once

// Helpers for /proc/PID/mountinfo (proc(5)), shared by every parser of it.

#include <string>

#include "absl/strings/string_view.h"

namespace nodeagent::linux {

// Decodes a path field's octal escapes: mountinfo writes space, tab, newline and backslash
// as \ooo ("\040" for a space).
std::string UnescapeMountInfoField(absl::string_view field);

}  // namespace nodeagent::linux
