// IPC between containers (the seed's bonus exercise 2), through nodectl against a node of the
// test's own: a FIFO in a shared named volume carries data from one container's process to
// another's; System V shared memory (IPC namespace) and POSIX shared memory (/dev/shm) are
// shared under --ipc container:ID (of a --ipc shareable container) and --ipc host, and
// isolated otherwise. busybox has no ipcmk, so a small static probe is bound into the
// containers.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/e2e/node_fixture.h"

namespace nodeagent::testing {
namespace {

using ::testing::HasSubstr;

class IpcE2E : public NodeFixture {
 protected:
  static std::string ProbeMount() { return absl::StrCat(IPC_PROBE_PATH, ":/probe:ro"); }
};

TEST_F(IpcE2E, FifoInASharedVolumeCarriesDataBetweenContainers) {
  const std::string volume = absl::StrCat("ipc-fifo-", getpid());
  // The reader makes the FIFO and blocks on it until the writer, in another container, opens it.
  std::string reader = RunDetached({"--network", "none", "-v", volume + ":/shared", "busybox", "sh",
                                    "-c", "mkfifo /shared/pipe && cat /shared/pipe"});
  CommandResult writer =
      Nodectl({"run", "--rm", "--network", "none", "-v", volume + ":/shared", "busybox", "sh", "-c",
               "for i in $(seq 100); do [ -p /shared/pipe ] && break; sleep 0.05; done; "
               "echo hello-through-the-fifo > /shared/pipe"});
  EXPECT_EQ(writer.exit_code, 0) << writer.err;
  EXPECT_EQ(Nodectl({"wait", reader}).out, "0\n");
  EXPECT_EQ(Nodectl({"logs", reader}).out, "hello-through-the-fifo\n");
  EXPECT_EQ(Nodectl({"rm", reader}).exit_code, 0);
  EXPECT_EQ(Nodectl({"volume", "rm", volume}).exit_code, 0);
}

TEST_F(IpcE2E, SharedMemoryIsSharedUnderIpcContainerAndIsolatedOtherwise) {
  const std::string key = absl::StrCat(700000 + getpid() % 100000);
  std::string owner = RunDetached({"--name", "ipc-owner", "--ipc", "shareable", "--network", "none",
                                   "-v", ProbeMount(), "busybox", "sh", "-c",
                                   "/probe sysv-create " + key +
                                       " hello-sysv && "
                                       "/probe posix-create na-shm hello-posix && sleep 600"});
  auto in = [&](std::vector<std::string> flags, const std::string& probe_args) {
    std::vector<std::string> args = {"run", "--rm", "--network", "none", "-v", ProbeMount()};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"busybox", "sh", "-c", "/probe " + probe_args});
    return Nodectl(args);
  };
  // Wait until the owner has made both objects.
  CommandResult sysv;
  for (int i = 0; i < 100; ++i) {
    sysv = in({"--ipc", "container:ipc-owner"}, "sysv-read " + key);
    if (sysv.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(sysv.out, "hello-sysv\n") << sysv.err;
  // POSIX shared memory lives in /dev/shm: the joiner gets the owner's.
  CommandResult posix = in({"--ipc", "container:ipc-owner"}, "posix-read na-shm");
  EXPECT_EQ(posix.out, "hello-posix\n") << posix.err;

  // A container of its own sees neither.
  CommandResult private_sysv = in({}, "sysv-read " + key);
  EXPECT_NE(private_sysv.exit_code, 0);
  EXPECT_THAT(private_sysv.err, HasSubstr("No such file"));
  CommandResult private_posix = in({}, "posix-read na-shm");
  EXPECT_NE(private_posix.exit_code, 0);
  EXPECT_THAT(private_posix.err, HasSubstr("No such file"));

  // A private container cannot be joined (Docker's rule), and nothing is left of the attempt.
  std::string loner =
      RunDetached({"--name", "ipc-private", "--network", "none", "busybox", "sleep", "600"});
  CommandResult join = in({"--ipc", "container:ipc-private"}, "sysv-read " + key);
  EXPECT_EQ(join.exit_code, 125);
  EXPECT_THAT(join.err, HasSubstr("--ipc shareable"));
  EXPECT_EQ(Nodectl({"rm", "-f", owner, loner}).exit_code, 0);
}

TEST_F(IpcE2E, IpcHostSharesTheHostsSegments) {
  // A segment the test makes in the host's IPC namespace, removed whatever happens.
  const key_t key = static_cast<key_t>(800000 + getpid() % 100000);
  int id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
  ASSERT_GE(id, 0);
  struct Remove {
    int id;
    ~Remove() { shmctl(id, IPC_RMID, nullptr); }
  } remove{id};
  void* mem = shmat(id, nullptr, 0);
  ASSERT_NE(mem, reinterpret_cast<void*>(-1));
  std::snprintf(static_cast<char*>(mem), 4096, "from-the-host");
  shmdt(mem);
  CommandResult host = Nodectl({"run", "--rm", "--network", "none", "--ipc", "host", "-v",
                                ProbeMount(), "busybox", "/probe", "sysv-read", absl::StrCat(key)});
  EXPECT_EQ(host.out, "from-the-host\n") << host.err;
  CommandResult isolated = Nodectl({"run", "--rm", "--network", "none", "-v", ProbeMount(),
                                    "busybox", "/probe", "sysv-read", absl::StrCat(key)});
  EXPECT_NE(isolated.exit_code, 0);

  // POSIX shared memory: the host's /dev/shm.
  const std::string name = absl::StrCat("nodeagent-e2e-", getpid());
  int fd = shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  struct Unlink {
    std::string name;
    ~Unlink() { shm_unlink(name.c_str()); }
  } unlink{"/" + name};
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  ASSERT_EQ(write(fd, "posix-from-host", 16), 16);
  close(fd);
  CommandResult posix = Nodectl({"run", "--rm", "--network", "none", "--ipc", "host", "-v",
                                 ProbeMount(), "busybox", "/probe", "posix-read", name});
  EXPECT_EQ(posix.out, "posix-from-host\n") << posix.err;
  CommandResult private_posix = Nodectl({"run", "--rm", "--network", "none", "-v", ProbeMount(),
                                         "busybox", "/probe", "posix-read", name});
  EXPECT_NE(private_posix.exit_code, 0);
}

}  // namespace
}  // namespace nodeagent::testing
