// Named POSIX shared-memory blocks: create, attach, the per-process cache of mappings, unlink
// (see shm_named.hpp).
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>
#include <string>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/shm_named.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kMaxName = 200;
constexpr std::size_t kCacheSlots = 8;

[[noreturn]] void fail(const std::string& what, int err) {
  throw SharedMemoryError(what + ": " + std::strerror(err), err);
}

std::string path_of(const std::string& name) {
  return "/" + name;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::shared_ptr<ShmMapping> map_fd(const std::string& name, int fd, std::size_t size,
                                   const struct stat& st) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mproc: cannot map shared memory '" + name + "'", errno);
  try {
    return std::make_shared<ShmMapping>(name, static_cast<std::byte*>(p), size,
                                        static_cast<std::uint64_t>(st.st_dev),
                                        static_cast<std::uint64_t>(st.st_ino));
  } catch (...) {
    ::munmap(p, size);
    throw;
  }
}

// Opens `name` and checks its size; the descriptor is closed by the caller.
int open_existing(const std::string& name, std::size_t min_size, struct stat& st) {
  const int fd = ::shm_open(path_of(name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw SharedMemoryError(
          "mproc: no shared memory block named '" + name + "' (never created, or already unlinked)",
          ENOENT);
    }
    fail("mproc: cannot open shared memory '" + name + "'", err);
  }
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail("mproc: cannot stat shared memory '" + name + "'", err);
  }
  const auto have = static_cast<std::size_t>(st.st_size);
  if (have == 0 || have < min_size) {
    ::close(fd);
    // Mapping past the end of the file would map, and then SIGBUS at the first touch.
    throw SharedMemoryError("mproc: shared memory '" + name + "' has " + std::to_string(have) +
                                " bytes; " + std::to_string(min_size == 0 ? 1 : min_size) +
                                " were asked for",
                            EINVAL);
  }
  return fd;
}

std::string random_name() {
  std::uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != sizeof r) {
    r = static_cast<std::uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ull ^
        static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&r));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "mproc_%016" PRIx64, r);
  return buf;
}

// ---- the cache --------------------------------------------------------------------------------

struct Cache {
  std::mutex mu;
  std::list<std::shared_ptr<ShmMapping>> lru;  // most recently used first
};

Cache& cache() {
  static Cache* c = [] {
    auto* ca = new Cache;  // never destroyed: handles in statics may outlive destruction order
    ::pthread_atfork([] { cache().mu.lock(); }, [] { cache().mu.unlock(); },
                     [] { cache().mu.unlock(); });
    return ca;
  }();
  return *c;
}

}  // namespace

ShmMapping::~ShmMapping() {
  if (addr != nullptr) ::munmap(addr, size);
}

std::string shm_check_name(std::string_view name) {
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty() || name.size() > kMaxName || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos || name == "." || name == "..") {
    throw SharedMemoryError("mproc: '" + std::string(name) +
                                "' is not a shared memory name (1 to 200 characters, no '/')",
                            EINVAL);
  }
  return std::string(name);
}

std::shared_ptr<ShmMapping> shm_create(std::string_view requested, std::size_t size, bool track) {
  if (size == 0) throw SharedMemoryError("mproc: a shared memory block needs size > 0", EINVAL);
  if (track) shm_tracker_start();  // before the block exists: a failure leaves nothing behind
  const bool random = requested.empty();
  std::string name;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    name = random ? random_name() : shm_check_name(requested);
    fd = ::shm_open(path_of(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) break;
    const int err = errno;
    if (err == EEXIST && random && attempt < 16) continue;
    if (err == EEXIST) {
      throw SharedMemoryError("mproc: a shared memory block named '" + name + "' already exists",
                              EEXIST);
    }
    fail("mproc: cannot create shared memory '" + name + "'", err);
  }
  Fd guard(fd);
  try {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      fail("mproc: cannot size shared memory '" + name + "'", errno);
    }
    // Back it now: on a full /dev/shm, an error here instead of a SIGBUS at some later write.
    const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
      fail("mproc: cannot reserve " + std::to_string(size) + " bytes of shared memory for '" +
               name + "'",
           rc);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail("mproc: cannot stat shared memory '" + name + "'", errno);
    auto m = map_fd(name, fd, size, st);
    if (track) shm_tracker_register(name, m->dev, m->ino);
    return m;
  } catch (...) {
    ::shm_unlink(path_of(name).c_str());
    throw;
  }
}

std::shared_ptr<ShmMapping> shm_attach(std::string_view requested, std::size_t min_size) {
  const std::string name = shm_check_name(requested);
  struct stat st {};
  Fd fd(open_existing(name, min_size, st));
  return map_fd(name, fd.get(), static_cast<std::size_t>(st.st_size), st);
}

std::shared_ptr<ShmMapping> shm_attach_cached(std::string_view requested, std::size_t min_size) {
  const std::string name = shm_check_name(requested);
  struct stat st {};
  Fd fd(open_existing(name, min_size, st));
  const auto size = static_cast<std::size_t>(st.st_size);
  const auto dev = static_cast<std::uint64_t>(st.st_dev);
  const auto ino = static_cast<std::uint64_t>(st.st_ino);
  Cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    for (auto it = c.lru.begin(); it != c.lru.end(); ++it) {
      const ShmMapping& m = **it;
      if (m.name == name && m.dev == dev && m.ino == ino && m.size == size) {
        c.lru.splice(c.lru.begin(), c.lru, it);
        return c.lru.front();
      }
    }
  }
  auto fresh = map_fd(name, fd.get(), size, st);
  std::shared_ptr<ShmMapping> evicted;  // unmapped outside the lock
  std::lock_guard lock(c.mu);
  c.lru.remove_if([&](const std::shared_ptr<ShmMapping>& m) { return m->name == name; });
  c.lru.push_front(fresh);
  if (c.lru.size() > kCacheSlots) {
    evicted = std::move(c.lru.back());
    c.lru.pop_back();
  }
  return fresh;
}

void shm_unlink(std::string_view requested) {
  const std::string name = shm_check_name(requested);
  {
    std::list<std::shared_ptr<ShmMapping>> dropped;
    Cache& c = cache();
    std::lock_guard lock(c.mu);
    for (auto it = c.lru.begin(); it != c.lru.end();) {
      auto next = std::next(it);
      if ((*it)->name == name) dropped.splice(dropped.begin(), c.lru, it);
      it = next;
    }
  }
  if (::shm_unlink(path_of(name).c_str()) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw SharedMemoryError(
          "mproc: no shared memory block named '" + name + "' to unlink (already unlinked?)",
          ENOENT);
    }
    fail("mproc: cannot unlink shared memory '" + name + "'", err);
  }
  shm_tracker_unregister(name);
}

}  // namespace mproc::detail
