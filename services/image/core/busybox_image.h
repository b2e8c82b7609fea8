#pragma once

// The built-in default image, so that a fresh machine can run a container with no download:
// "busybox:latest", made from Debian's busybox-static.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/image/core/image_store.h"

namespace nodeagent::image {

inline constexpr absl::string_view kBusyboxImageName = "busybox:latest";
inline constexpr absl::string_view kDefaultBusyboxPath = "/bin/busybox";

// Applet paths busybox installs, from `<busybox> --list-full` ("usr/bin/wget", ...).
absl::StatusOr<std::vector<std::string>> ListBusyboxApplets(const std::string& busybox_path);

// A minimal rootfs as an uncompressed tar: the FHS directories, bin/busybox, a symlink per
// applet, etc/passwd, etc/group and etc/hosts. Every entry has `mtime` and root ownership,
// so the same busybox binary always gives the same bytes (and so the same image id).
absl::StatusOr<std::string> BuildBusyboxRootfsTar(const std::string& busybox_path,
                                                  const std::vector<std::string>& applets,
                                                  absl::Time mtime);

// Creates "busybox:latest" from `busybox_path` unless the store has that name already.
// A missing binary is logged and is not an error: the node works without the image.
absl::Status EnsureBusyboxImage(ImageStore& store, const std::string& busybox_path);

}  // namespace nodeagent::image
