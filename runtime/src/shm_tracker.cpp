// The shared-memory tracker: a small process that unlinks the named blocks its clients created
// and did not unlink, once every client has ended — however they ended, SIGKILL included.
// Python's multiprocessing.resource_tracker, for shared memory.
//
// Why a process, and how it is started. Only something that outlives the creator can clean
// up after a SIGKILL, and the kernel tells it when to: the tracker holds one end of a
// SOCK_SEQPACKET socketpair, its clients the other; recv() returns 0 when the last client end
// is closed, that is, when every process holding one has ended. The program may be threaded
// when the first block is created, so the tracker is not a fork of it (a fork child of a
// threaded program may only make async-signal-safe calls, and would pin a copy-on-write image
// of the whole program). It is a fresh exec of /proc/self/exe by posix_spawn (glibc's is a
// vfork-style clone: nothing runs in the child between clone and exec but the file actions),
// that mproc::init recognises by an environment variable before anything else, as it
// recognises spawned workers. It then forks once more and the middle process exits, so the
// tracker is nobody's child: it is never a zombie of the program, never in its list of
// children, never signalled with it. It runs in a session of its own (setsid) so a Ctrl-C at
// the terminal does not take it down before the program it cleans up after; stdin and stdout
// are /dev/null (a pipe the program's reader waits on must not be held open by it); every
// descriptor but its end of the socket and stderr is closed.
//
// One tracker per process tree: a fork child (a Process under fork, a child of the user's own
// fork()) inherits its parent's connection and registers on it; a process that does not keep
// the descriptor — a pool worker (its zygote closes what it inherits) — or is exec'd (spawn,
// forkserver, another program) starts its own on first use. Messages are 'R' + the file's
// device and inode + the name, or 'U' + the name, one per datagram, so writers in several
// processes never interleave.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/owner.hpp"
#include "mproc/runtime/detail/shm_named.hpp"

extern char** environ;

namespace mproc::detail {
namespace {

constexpr const char* kTrackerEnv = "MPROC_SHM_TRACKER";
constexpr int kTrackerFd = 3;  // the tracker's end of the socket, in the tracker
constexpr std::size_t kMaxMessage = 512;

bool g_init_entered = false;  // set by init before anything else; read-only afterwards

struct Client {
  std::mutex mu;
  int fd = -1;  // this process's end; inherited by fork children (intentionally: see above)
  pid_t tracker = -1;
  std::uint64_t dev = 0, ino = 0;  // the socket's identity
  pid_t verified = -1;             // the process in which `fd` was last checked
};

Client& client() {
  static Client* c = [] {
    auto* cl = new Client;  // never destroyed: blocks may be created from static destructors
    ::pthread_atfork([] { client().mu.lock(); }, [] { client().mu.unlock(); },
                     [] { client().mu.unlock(); });
    return cl;
  }();
  return *c;
}

[[noreturn]] void fail(const std::string& what, int err) {
  throw SharedMemoryError(what + ": " + std::strerror(err), err);
}

// A fork child inherits the number with the rest of memory, but not necessarily the socket: a
// pool's zygote closes every descriptor it inherits, and the number may since name another
// file (a worker's own socket, even). So in each new process the number is checked once
// against the socket's identity; a stranger is forgotten, never written to (nor closed: it is
// not ours), and this process starts a tracker of its own when it needs one. Call with c.mu held.
void validate(Client& c) noexcept {
  const pid_t me = current_pid();
  if (c.fd < 0 || c.verified == me) return;
  struct stat st {};
  if (::fstat(c.fd, &st) != 0 || static_cast<std::uint64_t>(st.st_dev) != c.dev ||
      static_cast<std::uint64_t>(st.st_ino) != c.ino) {
    c.fd = -1;
    c.tracker = -1;
  }
  c.verified = me;
}

// In the tracker: collect names until every client end is closed, then unlink what is left —
// if the name still names the file that was registered (same device and inode): a block
// unlinked elsewhere and re-created under the same name by someone else is not ours to remove.
[[noreturn]] void run_tracker(int fd) {
  struct Id {
    std::uint64_t dev, ino;
  };
  std::map<std::string, Id> names;
  char buf[kMaxMessage];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // 0: every client has ended
    if (buf[0] == 'R' && n > 17) {
      Id id{};
      std::memcpy(&id.dev, buf + 1, 8);
      std::memcpy(&id.ino, buf + 9, 8);
      names[std::string(buf + 17, static_cast<std::size_t>(n - 17))] = id;
    } else if (buf[0] == 'U' && n > 1) {
      names.erase(std::string(buf + 1, static_cast<std::size_t>(n - 1)));
    }
  }
  for (const auto& [name, id] : names) {
    const std::string path = "/" + name;
    const int f = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (f < 0) continue;  // unlinked already
    struct stat st {};
    const bool same = ::fstat(f, &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == id.dev &&
                      static_cast<std::uint64_t>(st.st_ino) == id.ino;
    ::close(f);
    if (same && ::shm_unlink(path.c_str()) == 0) {
      std::fprintf(stderr,
                   "mproc: shared-memory tracker: unlinked '%s', which the process that created it "
                   "left behind (it ended without unlink())\n",
                   name.c_str());
    }
  }
  ::_exit(0);
}

}  // namespace

void enter_if_shm_tracker() {
  g_init_entered = true;
  const char* v = std::getenv(kTrackerEnv);
  if (v == nullptr) return;
  ::unsetenv(kTrackerEnv);
  // Detach: the middle process exits at once (its parent reaps it), the tracker is adopted.
  const pid_t pid = ::fork();
  if (pid < 0) ::_exit(1);
  if (pid > 0) ::_exit(0);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_NAME, "mproc-shm-trk");
  // Tell the client who we are (tests look for us; the client waits for this as a handshake).
  const pid_t self = ::getpid();
  (void)::send(kTrackerFd, &self, sizeof self, MSG_NOSIGNAL);
  run_tracker(kTrackerFd);
}

void shm_tracker_start() {
  Client& c = client();
  std::lock_guard lock(c.mu);
  validate(c);
  if (c.fd >= 0) return;
  if (!g_init_entered) {
    throw SharedMemoryError(
        "mproc: a tracked shared-memory block (track = true) needs the tracker, which is started "
        "from this program's own executable: call mproc::init(argc, argv) first thing in main, "
        "or create the block with track = false",
        EPERM);
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    fail("mproc: shared-memory tracker: socketpair", errno);
  }
  const int mine = sv[0], theirs = sv[1];
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawnattr_init(&attr);
  // dup2 onto itself clears FD_CLOEXEC (glibc >= 2.29), so theirs == 3 works too.
  ::posix_spawn_file_actions_adddup2(&fa, theirs, kTrackerFd);
  ::posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  ::posix_spawn_file_actions_addclosefrom_np(&fa, kTrackerFd + 1);
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGTERM);
  sigaddset(&dfl, SIGCHLD);
  sigaddset(&dfl, SIGPIPE);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &dfl);
  ::posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> env;
  const std::size_t prefix = std::strlen(kTrackerEnv);
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, kTrackerEnv, prefix) == 0 && (*e)[prefix] == '=') continue;
    env.push_back(*e);
  }
  std::string value = std::string(kTrackerEnv) + "=" + std::to_string(kTrackerFd);
  env.push_back(value.data());
  env.push_back(nullptr);
  char arg0[] = "mproc-shm-tracker";
  char* argv[] = {arg0, nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, env.data());
  ::posix_spawn_file_actions_destroy(&fa);
  ::posix_spawnattr_destroy(&attr);
  ::close(theirs);
  if (rc != 0) {
    ::close(mine);
    fail("mproc: shared-memory tracker: cannot exec /proc/self/exe", rc);
  }
  // The middle process exits as soon as it has forked the tracker (ECHILD if SIGCHLD is ignored
  // here: then the kernel reaped it).
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // The tracker's first message is its pid. Bounded: a program that does not reach
  // mproc::init promptly (or crashes before it) must not hang the creator.
  pollfd p{mine, POLLIN, 0};
  int ready = 0;
  for (int waited = 0; waited < 10000; waited += 100) {
    ready = ::poll(&p, 1, 100);
    if (ready != 0 && !(ready < 0 && errno == EINTR)) break;
  }
  pid_t tracker = -1;
  if (ready <= 0 || ::recv(mine, &tracker, sizeof tracker, 0) != sizeof tracker) {
    ::close(mine);
    throw SharedMemoryError(
        "mproc: the shared-memory tracker did not start (does main call mproc::init first?)",
        ECHILD);
  }
  struct stat st {};
  if (::fstat(mine, &st) != 0) {
    const int err = errno;
    ::close(mine);
    fail("mproc: shared-memory tracker: fstat", err);
  }
  c.fd = mine;
  c.tracker = tracker;
  c.dev = static_cast<std::uint64_t>(st.st_dev);
  c.ino = static_cast<std::uint64_t>(st.st_ino);
  c.verified = current_pid();
}

bool shm_tracker_running() noexcept {
  Client& c = client();
  std::lock_guard lock(c.mu);
  validate(c);
  return c.fd >= 0;
}

pid_t shm_tracker_pid() noexcept {
  Client& c = client();
  std::lock_guard lock(c.mu);
  validate(c);
  return c.tracker;
}

namespace {
bool send_message(const char* msg, std::size_t len) {
  Client& c = client();
  std::lock_guard lock(c.mu);
  validate(c);
  if (c.fd < 0) return false;
  for (;;) {
    if (::send(c.fd, msg, len, MSG_NOSIGNAL) >= 0) return true;
    if (errno != EINTR) return false;
  }
}
}  // namespace

void shm_tracker_register(const std::string& name, std::uint64_t dev, std::uint64_t ino) {
  shm_tracker_start();
  char buf[kMaxMessage];
  if (name.size() + 17 > sizeof buf) {
    throw SharedMemoryError("mproc: shared memory name too long for the tracker", EINVAL);
  }
  buf[0] = 'R';
  std::memcpy(buf + 1, &dev, 8);
  std::memcpy(buf + 9, &ino, 8);
  std::memcpy(buf + 17, name.data(), name.size());
  if (!send_message(buf, name.size() + 17)) {
    fail("mproc: cannot register '" + name + "' with the shared-memory tracker", errno);
  }
}

void shm_tracker_unregister(const std::string& name) noexcept {
  char buf[kMaxMessage];
  if (name.size() + 1 > sizeof buf) return;
  buf[0] = 'U';
  std::memcpy(buf + 1, name.data(), name.size());
  (void)send_message(buf, name.size() + 1);
}

}  // namespace mproc::detail
