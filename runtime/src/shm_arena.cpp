// Arenas of shared memory (memfd + MAP_SHARED), a bump allocator over them, and re-opening an
// arena named by a handle in another process (see shm_arena.hpp).
#include "mproc/runtime/detail/shm_arena.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <string_view>
#include <system_error>
#include <utility>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kArenaBytes = 64 * 1024;
constexpr std::size_t kAlign = 64;
constexpr std::string_view kMemfdName = "mproc-arena";
constexpr std::string_view kLinkPrefix = "/memfd:mproc-arena";

std::size_t align_up(std::size_t n, std::size_t a) {
  return (n + a - 1) / a * a;
}

bool same_file(int fd, std::uint64_t dev, std::uint64_t ino) noexcept {
  struct stat st {};
  return fd >= 0 && ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == dev &&
         static_cast<std::uint64_t>(st.st_ino) == ino;
}

}  // namespace

class ShmArena {
 public:
  ShmArena(int fd, void* base, std::size_t size, std::uint64_t dev, std::uint64_t ino,
           pid_t creator_pid, int creator_fd)
      : fd_(fd),
        base_(static_cast<char*>(base)),
        size_(size),
        dev_(dev),
        ino_(ino),
        creator_pid_(creator_pid),
        creator_fd_(creator_fd) {}
  ~ShmArena();
  ShmArena(const ShmArena&) = delete;
  ShmArena& operator=(const ShmArena&) = delete;

  int fd_;
  char* base_;
  std::size_t size_;
  std::uint64_t dev_;
  std::uint64_t ino_;
  pid_t creator_pid_;
  int creator_fd_;
};

namespace {

// The process's table of arenas and its allocator. Never destroyed: handles in static objects
// may outlive any destruction order.
struct Registry {
  std::mutex mu;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::weak_ptr<ShmArena>> arenas;
  std::weak_ptr<ShmArena> current;  // the arena small objects are bumped into
  std::size_t used = 0;
  pid_t owner = -1;  // the process that made `current` (a fork child must not bump into it)
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    ::pthread_atfork([] { registry().mu.lock(); }, [] { registry().mu.unlock(); },
                     [] { registry().mu.unlock(); });
    return reg;
  }();
  return *r;
}

// A new arena of `size` bytes; the registry lock is held.
std::shared_ptr<ShmArena> create_arena(Registry& reg, std::size_t size) {
  const int fd = ::memfd_create(kMemfdName.data(), MFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "ftruncate shared memory");
  }
  struct stat st {};
  ::fstat(fd, &st);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "mmap shared memory");
  }
  auto arena = std::make_shared<ShmArena>(fd, base, size, static_cast<std::uint64_t>(st.st_dev),
                                          static_cast<std::uint64_t>(st.st_ino), ::getpid(), fd);
  reg.arenas[{arena->dev_, arena->ino_}] = arena;
  return arena;
}

// Opens /proc/<pid>/fd/<fd> if it is an mproc arena with this device and inode; -1 otherwise.
int open_arena_of(pid_t pid, int fd, std::uint64_t dev, std::uint64_t ino) {
  if (pid <= 0 || fd < 0) return -1;
  const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  char link[256];
  const ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
  if (n <= 0 || std::string_view(link, static_cast<std::size_t>(n)).substr(0, kLinkPrefix.size()) !=
                    kLinkPrefix) {
    return -1;
  }
  const int out = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (out < 0) return -1;
  struct stat st {};
  if (::fstat(out, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::uint64_t>(st.st_dev) != dev ||
      static_cast<std::uint64_t>(st.st_ino) != ino) {
    ::close(out);
    return -1;
  }
  return out;
}

}  // namespace

ShmArena::~ShmArena() {
  ::munmap(base_, size_);
  // In a fork worker the inherited descriptor may have been closed and its number reused.
  if (same_file(fd_, dev_, ino_)) ::close(fd_);
  Registry& reg = registry();
  std::lock_guard<std::mutex> g(reg.mu);
  const auto it = reg.arenas.find({dev_, ino_});
  if (it != reg.arenas.end() && it->second.expired()) reg.arenas.erase(it);
}

std::uint64_t shm_kind(const std::type_info& t) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (const char* p = t.name(); *p != '\0'; ++p) {
    h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

ShmRef ShmRef::allocate(std::size_t size, std::uint64_t kind) {
  if (size == 0) size = 1;
  Registry& reg = registry();
  // Declared before the guard: a last reference dropped here runs ~ShmArena, which takes the
  // registry lock, only after the guard released it.
  std::shared_ptr<ShmArena> arena;
  std::shared_ptr<ShmArena> previous;
  std::lock_guard<std::mutex> g(reg.mu);
  std::size_t offset = 0;
  if (size > kArenaBytes / 4) {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    arena = create_arena(reg, align_up(kAlign + size, page));
    offset = kAlign;
  } else {
    arena = reg.current.lock();
    const pid_t self = ::getpid();
    std::size_t at = align_up(reg.used + sizeof(ShmHeader), kAlign);
    if (!arena || reg.owner != self || at + size > arena->size_) {
      previous = std::move(arena);
      arena = create_arena(reg, kArenaBytes);
      reg.current = arena;
      reg.owner = self;
      at = kAlign;
    }
    offset = at;
    reg.used = at + size;
  }
  ShmRef r;
  r.ptr_ = arena->base_ + offset;
  r.offset_ = offset;
  r.size_ = size;
  r.kind_ = kind;
  r.arena_ = std::move(arena);
  return r;
}

void ShmRef::publish() const noexcept {
  auto* h = reinterpret_cast<ShmHeader*>(static_cast<char*>(ptr_) - sizeof(ShmHeader));
  h->size = size_;
  std::atomic_ref<std::uint64_t>(h->kind).store(kind_, std::memory_order_release);
}

ShmHandleWire ShmRef::describe() const {
  if (!arena_) throw SerializationError("cannot send an empty shared-memory handle");
  ShmHandleWire w;
  w.dev = arena_->dev_;
  w.ino = arena_->ino_;
  w.offset = offset_;
  w.size = size_;
  if (same_file(arena_->fd_, arena_->dev_, arena_->ino_)) {
    w.pid[0] = ::getpid();
    w.fd[0] = arena_->fd_;
  }
  w.pid[1] = arena_->creator_pid_;
  w.fd[1] = arena_->creator_fd_;
  return w;
}

ShmRef ShmRef::attach(const ShmHandleWire& w, std::uint64_t kind) {
  if (w.size == 0 || w.offset < kAlign || w.offset % kAlign != 0 || w.size > (1ull << 47) ||
      w.offset > (1ull << 47)) {
    throw SerializationError("corrupt shared-memory handle");
  }
  Registry& reg = registry();
  std::shared_ptr<ShmArena> arena;
  {
    std::lock_guard<std::mutex> g(reg.mu);
    const auto it = reg.arenas.find({w.dev, w.ino});
    if (it != reg.arenas.end()) arena = it->second.lock();
    if (!arena) {
      int fd = -1;
      for (int i = 0; i < 2 && fd < 0; ++i) fd = open_arena_of(w.pid[i], w.fd[i], w.dev, w.ino);
      if (fd < 0) {
        throw SerializationError(
            "cannot reach the shared memory of a handle: neither process " +
            std::to_string(w.pid[0]) + " (sender) nor " + std::to_string(w.pid[1]) +
            " (creator) holds it any more; the object's creator must outlive the handles it "
            "sends");
      }
      struct stat st {};
      ::fstat(fd, &st);
      const std::size_t size = static_cast<std::size_t>(st.st_size);
      void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) {
        ::close(fd);
        throw SerializationError("cannot map the shared memory of a handle");
      }
      arena = std::make_shared<ShmArena>(fd, base, size, w.dev, w.ino, w.pid[1], w.fd[1]);
      reg.arenas[{w.dev, w.ino}] = arena;
    }
  }
  if (w.offset + w.size > arena->size_) throw SerializationError("corrupt shared-memory handle");
  char* p = arena->base_ + w.offset;
  auto* h = reinterpret_cast<ShmHeader*>(p - sizeof(ShmHeader));
  if (std::atomic_ref<std::uint64_t>(h->kind).load(std::memory_order_acquire) != kind ||
      h->size != w.size) {
    throw SerializationError("shared-memory handle names an object of another type or size");
  }
  ShmRef r;
  r.ptr_ = p;
  r.offset_ = w.offset;
  r.size_ = w.size;
  r.kind_ = kind;
  r.arena_ = std::move(arena);
  return r;
}

}  // namespace mproc::detail
