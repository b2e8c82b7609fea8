#include "cmd/nodectl/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace nodeagent::nodectl {
namespace {

std::mutex g_mu;
std::function<void(int)> g_handler;

sigset_t ForwardedSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH}) sigaddset(&set, sig);
  return set;
}

}  // namespace

void BlockAndHandleSignals() {
  sigset_t set = ForwardedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::thread([set] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      std::function<void(int)> handler;
      {
        std::lock_guard<std::mutex> lock(g_mu);
        handler = g_handler;
      }
      if (handler) {
        handler(sig);
      } else if (sig != SIGWINCH) {
        _exit(128 + sig);
      }
    }
  }).detach();
}

void SetSignalHandler(std::function<void(int)> handler) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_handler = std::move(handler);
}

int ParseSignal(const std::string& text) {
  int number = 0;
  if (absl::SimpleAtoi(text, &number)) return number >= 1 && number <= 64 ? number : 0;
  std::string name = absl::AsciiStrToUpper(text);
  if (absl::StartsWith(name, "SIG")) name = name.substr(3);
  for (int sig = 1; sig < 32; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev != nullptr && name == abbrev) return sig;
  }
  return 0;
}

}  // namespace nodeagent::nodectl
