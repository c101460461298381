#include "mproc/queue.hpp"

#include "mproc/serialize/detail/frame.hpp"

#include <linux/futex.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <system_error>
#include <vector>

namespace mproc::detail {

struct QueueShared {
  std::atomic<std::int64_t> size{0};
  std::atomic<std::uint32_t> unfinished{0};  // futex word (JoinableQueue)
  std::int64_t maxsize = 0;
  bool joinable = false;
  sem_t slots;                         // maxsize > 0 only
  std::atomic<std::uint32_t> shut{0};  // shutdown(): 1
};

namespace {

constexpr std::size_t kInline = 64 * 1024;  // larger items travel in a memfd
// kTagShutdown: shutdown()'s wake-up token, never an item. A getter that meets it puts it
// back for the next blocked getter and throws ShutDown; items put before the shutdown are
// ahead of it (the socket is FIFO), so they are drained first.
constexpr std::uint8_t kTagInline = 0, kTagMemfd = 1, kTagShutdown = 2;
constexpr std::size_t kShmSize = 4096;
static_assert(sizeof(QueueShared) <= kShmSize);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

using Clock = std::chrono::steady_clock;

struct Deadline {
  bool forever;
  Clock::time_point at;
  explicit Deadline(long long timeout_ns)
      : forever(timeout_ns < 0),
        at(Clock::now() + std::chrono::nanoseconds(timeout_ns < 0 ? 0 : timeout_ns)) {}
  // Milliseconds for poll, rounded up; -1 forever.
  int poll_ms() const {
    if (forever) return -1;
    const auto left = at - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<long long>(ms, INT_MAX));
  }
  bool expired() const { return !forever && Clock::now() >= at; }
  timespec abs_monotonic() const {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch());
    return timespec{static_cast<time_t>(ns.count() / 1'000'000'000),
                    static_cast<long>(ns.count() % 1'000'000'000)};
  }
};

void wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  if (::poll(&p, 1, ms) < 0 && errno != EINTR) fail("poll");
}

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, ts, nullptr, 0);
}

}  // namespace

QueueCore::QueueCore(std::size_t maxsize, bool joinable) {
  auto [g, p] = make_socketpair(SOCK_SEQPACKET);
  // Producers share the sending end's buffer; ask for a large one (privileged: forced).
  const int want = 4 << 20;
  if (::setsockopt(g.get(), SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0) {
    ::setsockopt(g.get(), SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  if (::setsockopt(p.get(), SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0) {
    ::setsockopt(p.get(), SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  get_ = std::move(g);
  put_ = std::move(p);
  shm_ = UniqueFd(::memfd_create("mproc-queue", MFD_CLOEXEC));
  if (!shm_) fail("memfd_create");
  if (::ftruncate(shm_.get(), kShmSize) != 0) fail("ftruncate");
  map();
  new (shared_) QueueShared;
  shared_->maxsize = static_cast<std::int64_t>(maxsize);
  shared_->joinable = joinable;
  if (maxsize > 0 &&
      ::sem_init(&shared_->slots, 1,
                 static_cast<unsigned>(std::min<std::size_t>(maxsize, SEM_VALUE_MAX))) != 0) {
    fail("sem_init");
  }
}

QueueCore::QueueCore(UniqueFd get_end, UniqueFd put_end, UniqueFd shm)
    : get_(std::move(get_end)), put_(std::move(put_end)), shm_(std::move(shm)) {
  map();
}

QueueCore::~QueueCore() {
  close();
}

void QueueCore::map() {
  void* p = ::mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, shm_.get(), 0);
  if (p == MAP_FAILED) fail("mmap queue state");
  shared_ = static_cast<QueueShared*>(p);
}

void QueueCore::close() noexcept {
  if (shared_ != nullptr) ::munmap(shared_, kShmSize);
  shared_ = nullptr;
  get_.reset();
  put_.reset();
  shm_.reset();
}

void QueueCore::check() const {
  if (shared_ == nullptr) throw ClosedError("queue is closed");
}

std::int64_t QueueCore::qsize() const {
  check();
  return shared_->size.load(std::memory_order_relaxed);
}

std::int64_t QueueCore::maxsize() const {
  check();
  return shared_->maxsize;
}

bool QueueCore::put(Bytes& msg, bool block, long long timeout_ns) {
  check();
  const Deadline deadline(block ? timeout_ns : 0);
  QueueShared& sh = *shared_;
  if (sh.shut.load() != 0) throw ShutDown("put() on a queue that was shut down");
  if (sh.maxsize > 0) {
    for (;;) {
      int r;
      if (!block) {
        r = ::sem_trywait(&sh.slots);
      } else if (deadline.forever) {
        r = ::sem_wait(&sh.slots);
      } else {
        const timespec ts = deadline.abs_monotonic();
        r = ::sem_clockwait(&sh.slots, CLOCK_MONOTONIC, &ts);
      }
      if (r == 0) {
        if (sh.shut.load() != 0) {  // woken by shutdown(): pass the wake-up on
          ::sem_post(&sh.slots);
          throw ShutDown("put() on a queue that was shut down");
        }
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ETIMEDOUT) return false;
      fail("sem_wait");
    }
  }
  // Counted before the item is visible, so a fast consumer never sees them below zero.
  if (sh.joinable) sh.unfinished.fetch_add(1);
  sh.size.fetch_add(1);
  const auto undo = [&] {
    sh.size.fetch_sub(1);
    if (sh.joinable) sh.unfinished.fetch_sub(1);
    if (sh.maxsize > 0) ::sem_post(&sh.slots);
  };
  try {
    UniqueFd spill;
    std::array<int, 1> fds{};
    std::span<const int> attach;
    const char* data = msg.data();
    std::size_t size = msg.size();
    std::array<char, 9> small{};
    if (msg.size() - 1 > kInline) {
      spill = UniqueFd(::memfd_create("mproc-queue-item", MFD_CLOEXEC));
      if (!spill) fail("memfd_create");
      const char* p = msg.data() + 1;
      std::size_t left = msg.size() - 1;
      while (left > 0) {
        const ssize_t n = ::write(spill.get(), p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("write queue item");
        p += n;
        left -= static_cast<std::size_t>(n);
      }
      const std::uint64_t len = msg.size() - 1;
      small[0] = static_cast<char>(kTagMemfd);
      std::memcpy(small.data() + 1, &len, 8);
      data = small.data();
      size = small.size();
      fds[0] = spill.get();
      attach = fds;
    } else {
      msg[0] = static_cast<char>(kTagInline);
    }
    while (!send_fds(put_.get(), data, size, attach, /*wait=*/false)) {
      if (!block || deadline.expired()) {
        undo();
        return false;
      }
      wait_fd(put_.get(), POLLOUT,
              std::min(deadline.poll_ms() < 0 ? 100 : deadline.poll_ms(), 100));
    }
  } catch (...) {
    undo();
    throw;
  }
  return true;
}

bool QueueCore::get(Bytes& out, bool block, long long timeout_ns) {
  check();
  const Deadline deadline(block ? timeout_ns : 0);
  thread_local std::vector<char> buf(kInline + 16);
  std::vector<int> fds;
  ssize_t n;
  for (;;) {
    fds.clear();
    n = recv_fds(get_.get(), buf.data(), buf.size(), fds, MSG_DONTWAIT);
    if (n > 0) break;
    for (int fd : fds) ::close(fd);
    if (n == 0) throw EOFError("queue: every sending end is closed");
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail("recvmsg");
    if (shared_->shut.load() != 0)
      throw ShutDown("get() on a queue that was shut down and is empty");
    if (!block || deadline.expired()) return false;
    wait_fd(get_.get(), POLLIN, deadline.poll_ms());
  }
  if (static_cast<std::uint8_t>(buf[0]) == kTagShutdown) {
    for (int fd : fds) ::close(fd);
    const char tag = static_cast<char>(kTagShutdown);
    send_fds(put_.get(), &tag, 1, {}, /*wait=*/false);  // for the next getter
    throw ShutDown("get() on a queue that was shut down and is empty");
  }
  QueueShared& sh = *shared_;
  sh.size.fetch_sub(1);
  if (sh.maxsize > 0) ::sem_post(&sh.slots);
  UniqueFd spill(fds.empty() ? -1 : fds[0]);
  for (std::size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
  if (static_cast<std::uint8_t>(buf[0]) == kTagInline) {
    out.assign(buf.data() + 1, buf.data() + n);
    return true;
  }
  std::uint64_t len = 0;
  if (static_cast<std::uint8_t>(buf[0]) != kTagMemfd || n != 9 || !spill) {
    throw SerializationError("corrupt queue message");
  }
  std::memcpy(&len, buf.data() + 1, 8);
  if (len > kDefaultMaxFrameBytes) throw SerializationError("oversized queue item");
  out.resize(len);
  std::size_t got = 0;
  while (got < len) {
    const ssize_t r = ::pread(spill.get(), out.data() + got, len - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw SerializationError("truncated queue item");
    got += static_cast<std::size_t>(r);
  }
  return true;
}

void QueueCore::shutdown(bool immediate) {
  check();
  QueueShared& sh = *shared_;
  sh.shut.store(1);
  if (immediate) {
    // Drop what is queued now; each dropped item gives back its slot and, for a JoinableQueue,
    // counts as task_done (Python's shutdown(immediate=True)).
    std::vector<char> buf(kInline + 16);
    std::vector<int> fds;
    for (;;) {
      fds.clear();
      const ssize_t n = recv_fds(get_.get(), buf.data(), buf.size(), fds, MSG_DONTWAIT);
      for (int fd : fds) ::close(fd);
      if (n <= 0) break;
      if (static_cast<std::uint8_t>(buf[0]) == kTagShutdown) continue;
      sh.size.fetch_sub(1);
      if (sh.maxsize > 0) ::sem_post(&sh.slots);
      if (sh.joinable) {
        std::uint32_t v = sh.unfinished.load();
        while (v > 0 && !sh.unfinished.compare_exchange_weak(v, v - 1)) {
        }
        if (v == 1) futex(&sh.unfinished, FUTEX_WAKE, INT_MAX, nullptr);
      }
    }
  }
  // Wake blocked getters (the token) and blocked putters (a slot, passed on by each).
  const char tag = static_cast<char>(kTagShutdown);
  send_fds(put_.get(), &tag, 1, {}, /*wait=*/false);
  if (sh.maxsize > 0) ::sem_post(&sh.slots);
}

bool QueueCore::is_shutdown() const {
  check();
  return shared_->shut.load() != 0;
}

void QueueCore::task_done() {
  check();
  std::atomic<std::uint32_t>& u = shared_->unfinished;
  std::uint32_t v = u.load();
  do {
    if (v == 0) throw ProcessError("task_done() called too many times");
  } while (!u.compare_exchange_weak(v, v - 1));
  if (v == 1) futex(&u, FUTEX_WAKE, INT_MAX, nullptr);
}

bool QueueCore::join(long long timeout_ns) {
  check();
  const Deadline deadline(timeout_ns);
  std::atomic<std::uint32_t>& u = shared_->unfinished;
  for (;;) {
    const std::uint32_t v = u.load();
    if (v == 0) return true;
    if (deadline.expired()) return false;
    timespec rel{};
    const timespec* ts = nullptr;
    if (!deadline.forever) {
      const auto left =
          std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.at - Clock::now());
      const long long l = std::max<long long>(0, left.count());
      rel = timespec{static_cast<time_t>(l / 1'000'000'000), static_cast<long>(l % 1'000'000'000)};
      ts = &rel;
    }
    futex(&u, FUTEX_WAIT, v, ts);  // shared memory: not FUTEX_PRIVATE
  }
}

long long queue_timeout_ns(std::chrono::nanoseconds d) noexcept {
  return d < std::chrono::nanoseconds::zero() ? 0 : d.count();
}

}  // namespace mproc::detail
