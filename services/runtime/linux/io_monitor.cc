#include "services/runtime/linux/io_monitor.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "services/common/linux/errno_status.h"
#include "services/common/linux/files.h"
#include "services/common/log.h"
#include "services/runtime/linux/spawn.h"

namespace nodeagent::runtime {

using linux::LastErrnoStatus;
using linux::UniqueFd;

namespace {

// Largest chunk of output stored as one record.
constexpr size_t kReadChunk = 64 * 1024;
// Stdin bytes held for a process that does not read them; beyond, clients are not read.
constexpr size_t kMaxStdinPending = 1 << 20;

int64_t UnixNanos() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace

struct IoMonitor::Client {
  UniqueFd fd;
  AttachFrameReader reader;
  std::string out;
  size_t out_offset = 0;
  bool reading = true;
  bool dead = false;

  size_t backlog() const { return out.size() - out_offset; }
};

IoMonitor::IoMonitor(MonitoredIo io) : io_(std::move(io)), buffer_(new char[kReadChunk]) {
  if (io_.tty_master) SetNonBlocking(io_.tty_master.get());
  if (io_.stdin_write) SetNonBlocking(io_.stdin_write.get());
}

IoMonitor::~IoMonitor() = default;

ExitRecord IoMonitor::Run() {
  std::vector<struct pollfd> fds;
  while (true) {
    if (exited_ && io_.tty_master) {
      // The process is gone: what the terminal still holds is read without waiting (another
      // process of a shared pid namespace may keep the slave open forever).
      while (io_.tty_master) {
        ssize_t n = ::read(io_.tty_master.get(), buffer_.get(), kReadChunk);
        if (n <= 0) {
          io_.tty_master.Reset();
          break;
        }
        Publish(kAttachStdout, buffer_.get(), static_cast<size_t>(n));
      }
    }
    if (exited_ && !io_.stdout_read && !io_.stderr_read && !io_.tty_master) break;
    fds.clear();
    // Fixed slots first; a negative fd is skipped by poll.
    fds.push_back({io_.stdout_read.get(), POLLIN, 0});
    fds.push_back({io_.stderr_read.get(), POLLIN, 0});
    short tty_events = POLLIN;
    if (!stdin_pending_.empty()) tty_events |= POLLOUT;
    fds.push_back({io_.tty_master.get(), tty_events, 0});
    fds.push_back({stdin_pending_.empty() ? -1 : io_.stdin_write.get(), POLLOUT, 0});
    fds.push_back({exited_ ? -1 : io_.pidfd, POLLIN, 0});
    fds.push_back({io_.signal_fd, POLLIN, 0});
    fds.push_back({io_.listen_fd, POLLIN, 0});
    constexpr size_t kFixed = 7;
    const bool read_clients = stdin_pending_.size() < kMaxStdinPending;
    for (const auto& c : clients_) {
      short events = 0;
      if (c->reading && read_clients) events |= POLLIN;
      if (c->backlog() > 0) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      LogError("poll: %s", LastErrnoStatus("poll").ToString());
      break;  // Cannot happen with valid fds; record what is known rather than spin.
    }
    if (fds[0].revents != 0) Output(io_.stdout_read, OutputStream::kStdout);
    if (fds[1].revents != 0) Output(io_.stderr_read, OutputStream::kStderr);
    if (fds[2].revents & POLLOUT) FlushStdin();
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR))
      Output(io_.tty_master, OutputStream::kStdout);
    if (fds[3].revents != 0) FlushStdin();
    if (fds[4].revents != 0) Reap();
    if (fds[5].revents != 0) Forward();
    if (fds[6].revents != 0) Accept();
    // Accept() may have added clients: only those polled have a slot.
    for (size_t i = kFixed; i < fds.size(); ++i) {
      Client& c = *clients_[i - kFixed];
      if (fds[i].revents & POLLIN) ReadClient(c);
      if (fds[i].revents & POLLOUT) WriteClient(c);
      if ((fds[i].revents & (POLLERR | POLLNVAL)) ||
          ((fds[i].revents & POLLHUP) && !(fds[i].revents & POLLIN))) {
        c.dead = true;
      }
    }
    DropDeadClients();
  }
  if (!exited_) Reap();
  return record_;
}

void IoMonitor::Output(UniqueFd& fd, OutputStream which) {
  ssize_t n;
  do {
    n = ::read(fd.get(), buffer_.get(), kReadChunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    // EOF, or EIO from a pty master whose slave is closed everywhere.
    if (n < 0 && errno != EIO) {
      LogWarning("read process output: %s", LastErrnoStatus("read").ToString());
    }
    fd.Reset();
    return;
  }
  Publish(which == OutputStream::kStdout ? kAttachStdout : kAttachStderr, buffer_.get(),
          static_cast<size_t>(n));
}

void IoMonitor::Publish(uint8_t type, const char* data, size_t n) {
  absl::string_view bytes(data, n);
  if (io_.log_fd >= 0) {
    // One read, one record, one write(2) on the O_APPEND fd: readers never see half a record
    // from a healthy writer.
    OutputStream which = type == kAttachStderr ? OutputStream::kStderr : OutputStream::kStdout;
    absl::Status written = linux::WriteAll(io_.log_fd, EncodeLogRecord(UnixNanos(), which, bytes));
    if (!written.ok() && !log_failed_) {
      // Keep reading regardless, or the process would block on a full pipe.
      LogError("write %s: %s (output is dropped until writes succeed again)", kContainerLogFile,
               written.ToString());
    }
    log_failed_ = !written.ok();
  }
  std::string frame = EncodeAttachFrame(type, bytes);
  if (!ever_attached_) {
    replay_bytes_ += frame.size();
    replay_.push_back(std::move(frame));
    while (replay_bytes_ > kAttachReplayBytes && !replay_.empty()) {
      replay_bytes_ -= replay_.front().size();
      replay_.pop_front();
    }
    return;
  }
  for (auto& c : clients_) {
    if (c->dead) continue;
    if (c->backlog() + frame.size() > kMaxAttachBacklog) {
      LogWarning("attacher fell %zu bytes behind: disconnected", c->backlog());
      c->dead = true;
      continue;
    }
    c->out.append(frame);
  }
}

void IoMonitor::Accept() {
  while (true) {
    int fd = ::accept4(io_.listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) LogWarning("%s", LastErrnoStatus("accept attacher").ToString());
      return;
    }
    auto client = std::make_unique<Client>();
    client->fd.Reset(fd);
    if (!ever_attached_) {
      ever_attached_ = true;
      for (const std::string& frame : replay_) client->out.append(frame);
      replay_.clear();
      replay_bytes_ = 0;
    }
    clients_.push_back(std::move(client));
  }
}

void IoMonitor::ReadClient(Client& c) {
  ssize_t n;
  do {
    n = ::read(c.fd.get(), buffer_.get(), kReadChunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    // The client sends no more; it may still read output (it is dropped on a write error).
    c.reading = false;
    return;
  }
  c.reader.Feed(absl::string_view(buffer_.get(), static_cast<size_t>(n)));
  while (true) {
    auto frame = c.reader.Next();
    if (!frame.ok()) {
      LogWarning("attacher: %s", frame.status().ToString());
      c.dead = true;
      return;
    }
    if (!frame->has_value()) return;
    HandleFrame(**frame);
  }
}

void IoMonitor::HandleFrame(const AttachFrame& frame) {
  const bool has_stdin = io_.tty_master || io_.stdin_write;
  switch (frame.type) {
    case kAttachStdin:
      if (has_stdin && !stdin_close_requested_) stdin_pending_.append(frame.payload);
      break;
    case kAttachCloseStdin:
      if (io_.tty_master) {
        // Closing the master would hang the terminal up: send its end-of-file character.
        struct termios t;
        char eof = 4;  // ^D
        if (::tcgetattr(io_.tty_master.get(), &t) == 0 && t.c_cc[VEOF] != 0) eof = t.c_cc[VEOF];
        stdin_pending_.push_back(eof);
      } else if (io_.stdin_write) {
        stdin_close_requested_ = true;
      }
      FlushStdin();
      break;
    case kAttachResize: {
      auto size = DecodeResize(frame.payload);
      if (!size.ok() || !io_.tty_master) break;
      struct winsize ws = {};
      ws.ws_row = size->first;
      ws.ws_col = size->second;
      if (::ioctl(io_.tty_master.get(), TIOCSWINSZ, &ws) != 0) {
        LogWarning("%s", LastErrnoStatus("TIOCSWINSZ").ToString());
      }
      break;
    }
    default:
      break;  // Unknown frames are skipped: newer clients may send more.
  }
}

void IoMonitor::FlushStdin() {
  int fd = io_.tty_master ? io_.tty_master.get() : io_.stdin_write.get();
  while (fd >= 0 && !stdin_pending_.empty()) {
    ssize_t n = ::write(fd, stdin_pending_.data(), stdin_pending_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      // EPIPE: nobody reads stdin any more. Input is discarded from now on.
      stdin_pending_.clear();
      if (io_.stdin_write) io_.stdin_write.Reset();
      return;
    }
    stdin_pending_.erase(0, static_cast<size_t>(n));
  }
  if (stdin_close_requested_ && stdin_pending_.empty()) io_.stdin_write.Reset();
}

void IoMonitor::WriteClient(Client& c) {
  while (c.backlog() > 0) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_offset, c.backlog(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) c.dead = true;
      break;
    }
    c.out_offset += static_cast<size_t>(n);
  }
  if (c.out_offset == c.out.size()) {
    c.out.clear();
    c.out_offset = 0;
  } else if (c.out_offset > (1 << 20)) {
    c.out.erase(0, c.out_offset);
    c.out_offset = 0;
  }
}

void IoMonitor::DropDeadClients() {
  std::erase_if(clients_, [](const std::unique_ptr<Client>& c) { return c->dead; });
}

void IoMonitor::Reap() {
  absl::StatusOr<siginfo_t> reaped = ReapChild(io_.pidfd);
  record_.finished_unix_nanos = UnixNanos();
  exited_ = true;
  if (!reaped.ok()) {
    // Only a broken invariant (it is our child) gets here: record an unknown end rather
    // than success.
    LogError("%s", reaped.status().ToString());
    record_.exit_code = 255;
    return;
  }
  if (reaped->si_code == CLD_EXITED) {
    record_.exit_code = reaped->si_status;
  } else {  // CLD_KILLED, CLD_DUMPED.
    record_.signal = reaped->si_status;
    record_.exit_code = 128 + reaped->si_status;
  }
}

void IoMonitor::Forward() {
  struct signalfd_siginfo si;
  while (::read(io_.signal_fd, &si, sizeof(si)) == sizeof(si)) {
    if (exited_) continue;
    // Through the pidfd: never a recycled pid.
    if (::syscall(SYS_pidfd_send_signal, io_.pidfd, si.ssi_signo, nullptr, 0) != 0) {
      LogWarning("forward signal %d: %s", si.ssi_signo,
                 LastErrnoStatus("pidfd_send_signal").ToString());
    }
  }
}

void IoMonitor::AwaitFirstAttacher(int timeout_ms) {
  if (ever_attached_ || io_.listen_fd < 0) return;
  struct pollfd pfd = {io_.listen_fd, POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&pfd, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc > 0) Accept();
}

void IoMonitor::SendExit(const ExitRecord& record) {
  if (io_.listen_fd >= 0) {
    // Late attachers get ECONNREFUSED rather than a socket nobody serves.
    io_.listen_fd = -1;
  }
  std::string frame = EncodeAttachFrame(kAttachExit, SerializeExitRecord(record));
  for (auto& c : clients_) c->out.append(frame);
  struct timespec start;
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  while (true) {
    DropDeadClients();
    std::vector<struct pollfd> fds;
    for (const auto& c : clients_) {
      if (c->backlog() > 0) fds.push_back({c->fd.get(), POLLOUT, 0});
    }
    if (fds.empty()) break;
    struct timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left_ms =
        2000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
    if (left_ms <= 0) break;
    if (::poll(fds.data(), fds.size(), static_cast<int>(left_ms)) < 0 && errno != EINTR) break;
    for (auto& c : clients_) {
      if (c->backlog() > 0) WriteClient(*c);
      if (c->backlog() == 0) c->dead = true;  // Done with it: closed below.
    }
  }
  clients_.clear();
}

}  // namespace nodeagent::runtime
