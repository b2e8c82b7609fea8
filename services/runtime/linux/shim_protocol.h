#pragma once

// The contract between the runtime service and node-shim, the small per-container monitor.
//
// The runtime writes <bundle>/config.json (ShimConfig) and starts
//   node-shim --bundle <bundle>
// with fd 3 the write end of a pipe (the "start pipe"). node-shim:
//   1. clone()s the container's first process into the namespaces of ShimConfig::namespaces
//      (by default new pid, mount, uts, ipc, net and cgroup namespaces); that child joins the
//      cgroup dirs in ShimConfig::cgroup_dirs, unshares the cgroup namespace, mounts the rootfs
//      at <bundle>/rootfs (visible only in the container's mount namespace, which is a slave of
//      the host's), /proc, /dev, /sys, masks paths, sets the hostname, brings loopback up,
//      pivot_root()s, switches user, drops capabilities, installs the seccomp filter and execs
//      args (PATH looked up inside the container). With `init`, it forks args as its child and
//      stays PID 1 itself (see ShimConfig::init).
//   2. writes one line to the start pipe and closes it:
//        "ok <host pid of the container's first process>\n"  or
//        "error <absl status code number> <message>\n"      (nothing is left running then)
//   3. writes <bundle>/shim.pid (its own pid) before step 1 and <bundle>/init.pid after it,
//   4. appends the container's stdout/stderr to <bundle>/container.log (log_format.h records)
//      and serves them live on <bundle>/attach.sock (the attach protocol below), which also
//      takes stdin (with stdin_open or tty) and window-size changes (with tty),
//   5. when the first process has exited and its output is drained, writes <bundle>/exit.json
//      (ExitRecord) atomically, sends the exit frame to every attacher and exits 0.
// node-shim never talks gRPC and outlives a restart of the runtime service.
//
// exec: the runtime makes <bundle>/exec-<exec id>/ (an "exec dir"), writes process.json
// (ShimExecProcess) into it and starts
//   node-shim exec --bundle <bundle> --exec-id <exec id>
// with fd 3 the start pipe, as above. That node-shim joins every namespace of the running
// container's first process (found through <bundle>/init.pid, checked against shim.pid) and
// its cgroups, applies the container's hardening (user, capabilities, seccomp, no_new_privs of
// config.json unless ShimExecProcess overrides them), chdirs and execs the process (PATH
// looked up inside the container; no host binary ever runs inside the container). It reports
// on the start pipe like the main node-shim ("error 9 container ... is not running" for a
// stopped container), writes <exec dir>/shim.pid, serves the process's output (kept in memory
// until the first attacher, not in container.log) and stdin on <exec dir>/attach.sock, writes
// <exec dir>/exit.json when the process has exited and exits 0. The runtime removes the exec
// dir.
//
// warm: to keep the slow part of a start off the request's path, the runtime may keep a
// node-shim waiting (WarmShimPool) before any container exists:
//   node-shim warm --cgroup DIR [--cgroup DIR ...]
// with fd 3 the start pipe and fd 4 the read end of a "control pipe". It clones a child into
// new pid, mount (all mounts made slaves), uts, ipc and net namespaces; the child joins the
// given (v1) cgroup dirs -- the cgroup.procs write that waits for an RCU grace period -- and
// unshares its cgroup namespace there. node-shim then writes "ready\n" to the start pipe. The
// runtime renames those cgroup dirs to the container's (CgroupDriver::Adopt), writes
// <bundle>/config.json with them in cgroup_dirs and writes "go <bundle>\n" to the control pipe;
// from there on this node-shim is that container's, exactly as if started with --bundle (the
// same start report, files and attach socket), its child joining config.namespaces' net, ipc
// and uts paths itself. Only configs that WarmStartable accepts may be sent. EOF on the control
// pipe before "go" (the runtime stopped or retired the slot), or a dead child, ends it: the
// child is killed, the cgroup dirs are removed and node-shim exits without a report.
//
// Attach protocol (<bundle>/attach.sock and <exec dir>/attach.sock, SOCK_STREAM). Socket paths
// may be longer than sun_path allows: bind/connect through "/proc/self/fd/<dir fd>/attach.sock"
// (ConnectAttachSocket in attach_client.h does so). Both directions carry frames:
//   type    u8
//   length  u32, big-endian, at most kMaxAttachPayload
//   payload `length` bytes
// client -> shim:
//   kAttachStdin       bytes for the process's stdin (ignored without stdin_open/tty)
//   kAttachCloseStdin  (empty) end of input: closes the stdin pipe; with a tty, sends the
//                      terminal's VEOF character (^D) instead, since closing the pty master
//                      would hang the whole terminal up. The runtime sends it when its client's
//                      stdin ends and it wants Docker's StdinOnce; a client that merely
//                      disconnects leaves stdin open for the next attacher.
//   kAttachResize      rows u16 BE, cols u16 BE: TIOCSWINSZ on the pty (SIGWINCH follows)
// shim -> client:
//   kAttachStdout, kAttachStderr  output as it is produced (with a tty all of it is stdout).
//                      The first attacher also gets what was produced before it connected
//                      (up to kAttachReplayBytes), so `run -it` misses no prompt.
//   kAttachExit        ExitRecord JSON (SerializeExitRecord); the last frame, then the shim
//                      closes the connection.
// Several attachers may be connected; each gets every output frame. An attacher that falls
// kMaxAttachBacklog bytes behind is disconnected (the container is never blocked by a client).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nodeagent::runtime {

inline constexpr char kShimConfigFile[] = "config.json";
inline constexpr char kShimPidFile[] = "shim.pid";
inline constexpr char kInitPidFile[] = "init.pid";
inline constexpr char kContainerLogFile[] = "container.log";
inline constexpr char kExitFile[] = "exit.json";
inline constexpr char kRootfsDir[] = "rootfs";
// The container's /etc/hostname, bound over the image's as Docker does.
inline constexpr char kHostnameFile[] = "hostname";
inline constexpr char kAttachSocketFile[] = "attach.sock";
inline constexpr char kExecDirPrefix[] = "exec-";  // <bundle>/exec-<exec id>/
inline constexpr char kExecProcessFile[] = "process.json";
inline constexpr int kShimStartPipeFd = 3;
inline constexpr int kShimControlPipeFd = 4;  // node-shim warm: the "go" line (see above).

// One mount(2) call: mount(source, <target>, type, flags-from-options, data-from-options).
struct ShimMount {
  std::string type;  // "overlay", "bind", "tmpfs", "proc", ...
  std::string source;
  std::string destination;           // Absolute path in the container; empty for the rootfs itself.
  std::vector<std::string> options;  // "ro", "rbind", "rslave", "lowerdir=...", ...
  // Set: `source` is a path in that mount namespace (a /proc/PID/ns/mnt file), bound by cloning
  // it there (open_tree) -- another container's /dev/shm under --ipc container:.
  std::string source_mount_ns = {};
};

// One namespace of the container, as in the OCI runtime spec's linux.namespaces.
struct ShimNamespace {
  std::string type;  // "pid", "net", "ipc", "uts", "mnt", "cgroup" or "user".
  // Empty: a new namespace. Otherwise a namespace file to join with setns(2): a netns the
  // network service bind-mounted, or /proc/<pid>/ns/<type> of another container's process.
  std::string path;
};

// One line of /proc/<pid>/uid_map or gid_map.
struct ShimIdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

struct ShimConfig {
  std::string id;
  std::string bundle;                    // Absolute path of the container's directory.
  std::vector<ShimMount> rootfs_mounts;  // Applied in order at <bundle>/rootfs.
  bool readonly_rootfs = false;
  std::vector<ShimMount> mounts;  // Extra mounts inside the rootfs, in order.
  std::string hostname;           // Set only when the uts namespace is new.
  std::vector<std::string> args;  // argv; args[0] looked up in the container's PATH.
  std::vector<std::string> env;   // KEY=VALUE.
  std::string cwd = "/";
  std::vector<std::string> cgroup_dirs;  // Host cgroup dirs the first process joins.

  // Namespaces. Absent (nullopt, the JSON key missing): kDefaultNamespaces, all new. Present:
  // exactly these; a type not listed is shared with the host (--network host, --ipc host).
  // "mnt" must be listed with an empty path. node-shim enters joined namespaces itself just
  // before clone() (and returns to its own right after), so the container's new namespaces
  // are made inside them; a joined pid namespace means the container's first process is not
  // PID 1 there and its /proc shows that namespace.
  std::optional<std::vector<ShimNamespace>> namespaces;
  // user namespace mappings; required (non-empty) when "user" is listed with an empty path.
  // Written by node-shim (as root, no newuidmap) before the child goes on; node-shim then
  // mounts the rootfs id-mapped and /sys for the child (userns_rootfs.h).
  std::vector<ShimIdMapping> uid_mappings;
  std::vector<ShimIdMapping> gid_mappings;

  // Terminal and stdin. tty: the container gets a pty's slave as fds 0-2 and controlling
  // terminal (allocated in the container's own devpts); node-shim keeps the master and serves
  // it on attach.sock. stdin_open (without tty): fd 0 is a pipe fed from attach.sock (else
  // /dev/null). tty_rows/tty_cols: initial window size (0: the kernel's 0x0 until a resize).
  bool tty = false;
  bool stdin_open = false;
  uint16_t tty_rows = 0;
  uint16_t tty_cols = 0;

  // init: PID 1 is node-shim's own code, which forks args as its child (in a process group of
  // its own, the terminal's foreground group with a tty), reaps every zombie, forwards the
  // signals it gets to the child's process group and exits with the child's status (128+N
  // when the child was killed by signal N). init_prompt: with init, PS1=<init_prompt> is set
  // in the child's environment (the seed exercise's prompt).
  bool init = false;
  std::string init_prompt;

  // Hardening (Docker's defaults unless privileged).
  // user: "" (root), "uid", "uid:gid", "name", "name:group"; names are looked up in the
  // container's /etc/passwd and /etc/group; supplementary groups from /etc/group. HOME is
  // set from /etc/passwd when env has none.
  std::string user;
  // privileged: every capability, no seccomp filter, no masked or read-only paths, no
  // no_new_privs unless asked; /sys read-write.
  bool privileged = false;
  // Capability names ("NET_ADMIN" or "CAP_NET_ADMIN", case-insensitive, or "ALL") added to and
  // then dropped from Docker's default set (kDefaultCapabilities).
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  // "default" (built-in, modelled on Docker's default profile: EPERM), "unconfined" (none), or
  // a Docker-format JSON profile (seccomp_profile.h) installed instead of the default.
  // Empty: "default", or "unconfined" when privileged.
  std::string seccomp;
  // Absent: true unless privileged.
  std::optional<bool> no_new_privs;
  // Absent: Docker's lists (kDefaultMaskedPaths, kDefaultReadonlyPaths), none when privileged.
  std::optional<std::vector<std::string>> masked_paths;
  std::optional<std::vector<std::string>> readonly_paths;
};

// What `node-shim exec` runs in a running container: <exec dir>/process.json.
struct ShimExecProcess {
  std::vector<std::string> args;  // argv; args[0] looked up in the container's PATH.
  std::vector<std::string> env;   // KEY=VALUE; the container's config.json env when empty.
  std::string cwd;                // Empty: the container's cwd.
  std::string user;               // Empty: the container's user.
  bool tty = false;
  bool stdin_open = false;
  uint16_t tty_rows = 0;
  uint16_t tty_cols = 0;
  // Extra capabilities, like `docker exec --privileged`: when true, the exec gets every
  // capability and no seccomp filter whatever the container has.
  bool privileged = false;
};

// The namespaces a container gets when ShimConfig::namespaces is absent.
std::vector<ShimNamespace> DefaultNamespaces();
// config.namespaces or the defaults, checked: known types, no duplicates, "mnt" new, "user"
// new only with mappings. INVALID_ARGUMENT naming the bad entry otherwise.
absl::StatusOr<std::vector<ShimNamespace>> EffectiveNamespaces(const ShimConfig& config);

// OK when a warm node-shim can start `config`: new pid, mnt, uts and cgroup namespaces, net
// and ipc new or joined by path, no user namespace, and no bind that must be cloned from
// another mount namespace or shared with the host (both need the mount namespace as it is at
// start, not as it was when the warm child was made). Otherwise the reason.
absl::Status WarmStartable(const ShimConfig& config);
// The bundle of a control pipe's "go <bundle>\n" line; INVALID_ARGUMENT for anything else.
absl::StatusOr<std::string> ParseWarmGo(absl::string_view line);
// Reads <bundle>/config.json and checks that it names `bundle` (or fills it in).
absl::StatusOr<ShimConfig> LoadShimConfig(const std::string& bundle);

struct ExitRecord {
  int exit_code = 0;  // 0-255, or 128+signal.
  int signal = 0;     // Signal that ended the process, 0 if none.
  bool oom_killed = false;
  int64_t finished_unix_nanos = 0;
};

std::string SerializeShimConfig(const ShimConfig& config);
absl::StatusOr<ShimConfig> ParseShimConfig(absl::string_view json);
std::string SerializeExitRecord(const ExitRecord& record);
absl::StatusOr<ExitRecord> ParseExitRecord(absl::string_view json);
std::string SerializeExecProcess(const ShimExecProcess& process);
absl::StatusOr<ShimExecProcess> ParseExecProcess(absl::string_view json);

// Attach frames (see the protocol above).
enum AttachFrameType : uint8_t {
  kAttachStdin = 1,
  kAttachStdout = 2,
  kAttachStderr = 3,
  kAttachResize = 4,
  kAttachCloseStdin = 5,
  kAttachExit = 6,
};
inline constexpr size_t kAttachHeaderSize = 5;
inline constexpr uint32_t kMaxAttachPayload = 1 << 20;
inline constexpr size_t kAttachReplayBytes = 1 << 20;
inline constexpr size_t kMaxAttachBacklog = 8 << 20;

struct AttachFrame {
  uint8_t type = 0;
  std::string payload;
};

std::string EncodeAttachFrame(uint8_t type, absl::string_view payload);
std::string EncodeResizeFrame(uint16_t rows, uint16_t cols);
// Rows and cols of a kAttachResize payload; INVALID_ARGUMENT unless it is 4 bytes.
absl::StatusOr<std::pair<uint16_t, uint16_t>> DecodeResize(absl::string_view payload);

// Splits a byte stream into frames.
class AttachFrameReader {
 public:
  void Feed(absl::string_view bytes) { buffer_.append(bytes.data(), bytes.size()); }
  // The next whole frame, nullopt when more bytes are needed, or INVALID_ARGUMENT for a
  // payload longer than kMaxAttachPayload (the stream is then unusable).
  absl::StatusOr<std::optional<AttachFrame>> Next();

 private:
  std::string buffer_;
  size_t offset_ = 0;
};

}  // namespace nodeagent::runtime
