#pragma once

// Helpers for the runtime's integration tests (root, real kernel): temporary directories that
// always go away, a busybox rootfs, and running the real node-shim binary.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/common/linux/unique_fd.h"
#include "services/runtime/core/log_format.h"
#include "services/runtime/linux/cgroup_driver.h"
#include "services/runtime/linux/shim_protocol.h"

namespace nodeagent::runtime::testutil {

bool IsRoot();

// A directory under /var/tmp (not /tmp: tmpfs there may lack overlay upper support on some
// hosts, and the design keeps container state off /tmp), removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// <dir>/bin/busybox (Debian's busybox-static) plus one symlink per applet, as
// `busybox --install -s` makes them, and the usual empty top-level directories.
absl::Status BuildBusyboxRootfs(const std::string& dir);

absl::Status WriteText(const std::string& path, const std::string& text, mode_t mode = 0644);

// A running node-shim and its start report.
struct ShimProcess {
  pid_t pid = -1;
  std::string start_line;    // "ok <pid>" / "error <code> <message>", without the newline.
  pid_t container_pid = -1;  // Parsed from "ok <pid>".
};

// Writes <config.bundle>/config.json and starts node-shim on it with a pipe on fd 3; returns
// once the start line has arrived (or the pipe closed without one). `leak_fd`, if >= 0, is an
// extra fd node-shim inherits without close-on-exec (the container must not see it).
absl::StatusOr<ShimProcess> StartShim(const ShimConfig& config, int leak_fd = -1);

// Starts `node-shim exec --bundle <bundle> --exec-id <exec_id>` after writing
// <bundle>/exec-<exec_id>/process.json; returns once the start line has arrived.
absl::StatusOr<ShimProcess> StartExecShim(const std::string& bundle, const std::string& exec_id,
                                          const ShimExecProcess& process);

// What an attacher saw: output by stream and the exit record, if the exit frame came.
struct AttachResult {
  std::string out;
  std::string err;
  absl::StatusOr<ExitRecord> exit = absl::UnknownError("no exit frame");
};

// An attach client (ConnectAttachSocket + frames) for tests.
class Attacher {
 public:
  static absl::StatusOr<Attacher> Connect(const std::string& dir);
  absl::Status Send(uint8_t type, const std::string& payload);
  absl::Status Resize(uint16_t rows, uint16_t cols);
  // Reads frames until stdout contains `needle` (true) or the deadline passes / exit (false).
  bool WaitForOutput(const std::string& needle, absl::Duration timeout = absl::Seconds(10));
  // Reads until the exit frame or EOF or the deadline.
  AttachResult ReadToExit(absl::Duration timeout = absl::Seconds(10));
  const AttachResult& seen() const { return seen_; }

 private:
  bool ReadSome(absl::Time deadline);  // False at EOF, error or deadline.
  linux::UniqueFd fd_;
  AttachFrameReader reader_;
  AttachResult seen_;
  bool done_ = false;
};

// Waits for node-shim to exit; its exit status, or DEADLINE_EXCEEDED (it is then killed).
absl::StatusOr<int> WaitShim(ShimProcess& shim, absl::Duration timeout = absl::Seconds(20));

// SIGKILLs node-shim and the container's first process if they still run. For TearDown.
void KillShim(const ShimProcess& shim);

struct ShimResult {
  ShimProcess shim;
  int shim_status = -1;
  absl::StatusOr<ExitRecord> exit = absl::UnknownError("not read");
  std::string out;  // Container stdout and stderr as stored in container.log.
  std::string err;
};

// StartShim + WaitShim + reading exit.json and container.log.
ShimResult RunShimToEnd(const ShimConfig& config);

// stdout and stderr decoded from <bundle>/container.log.
absl::Status ReadContainerLog(const std::string& bundle, std::string& out, std::string& err);

// Polls `path` until it contains `needle` or `timeout` passes.
bool WaitForFileContaining(const std::string& path, const std::string& needle,
                           absl::Duration timeout = absl::Seconds(10));

// Removes the driver's parent directory (in every v1 hierarchy, or on v2) after a test; it
// must be empty by then.
void RemoveCgroupParent(const CgroupDriver& driver);

// Mount points and sources of the calling process's mount table ("<mount point> <fstype>
// <source>" per mount, sorted), for before/after comparisons.
std::vector<std::string> MountTable();

}  // namespace nodeagent::runtime::testutil
