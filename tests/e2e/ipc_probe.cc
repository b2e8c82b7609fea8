// ipc_probe: a tiny static program the IPC end-to-end test binds into busybox containers
// (busybox has no ipcmk/ipcs): it creates or reads a System V shared memory segment (which
// lives in the IPC namespace) and a POSIX one (which lives in /dev/shm).
//
//   ipc_probe sysv-create KEY TEXT | sysv-read KEY | posix-create NAME TEXT | posix-read NAME
// Exit 0 and the text on stdout for a read; 1 with the errno text when the object is absent.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr size_t kSize = 4096;

int Fail(const char* what) {
  std::fprintf(stderr, "ipc_probe: %s: %s\n", what, std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ipc_probe sysv-create|sysv-read|posix-create|posix-read ...\n");
    return 2;
  }
  const std::string op = argv[1];
  if (op == "sysv-create" || op == "sysv-read") {
    key_t key = static_cast<key_t>(std::strtol(argv[2], nullptr, 10));
    bool create = op == "sysv-create";
    int id = shmget(key, kSize, create ? (IPC_CREAT | IPC_EXCL | 0600) : 0);
    if (id < 0) return Fail("shmget");
    void* mem = shmat(id, nullptr, 0);
    if (mem == reinterpret_cast<void*>(-1)) return Fail("shmat");
    if (create) {
      std::snprintf(static_cast<char*>(mem), kSize, "%s", argc > 3 ? argv[3] : "");
    } else {
      std::printf("%s\n", static_cast<char*>(mem));
    }
    shmdt(mem);
    return 0;
  }
  if (op == "posix-create" || op == "posix-read") {
    bool create = op == "posix-create";
    std::string name = std::string("/") + argv[2];
    int fd = shm_open(name.c_str(), create ? (O_RDWR | O_CREAT | O_EXCL) : O_RDONLY, 0600);
    if (fd < 0) return Fail("shm_open");
    if (create && ftruncate(fd, kSize) != 0) return Fail("ftruncate");
    void* mem =
        mmap(nullptr, kSize, create ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) return Fail("mmap");
    if (create) {
      std::snprintf(static_cast<char*>(mem), kSize, "%s", argc > 3 ? argv[3] : "");
    } else {
      std::printf("%s\n", static_cast<char*>(mem));
    }
    return 0;
  }
  std::fprintf(stderr, "ipc_probe: unknown operation %s\n", op.c_str());
  return 2;
}
