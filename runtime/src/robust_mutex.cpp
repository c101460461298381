// Lock and RLock: robust, process-shared pthread mutexes in shared memory.
#include <linux/futex.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <new>
#include <system_error>
#include <typeinfo>

#include "sync_internal.hpp"

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_mutex_pre_lock(void* addr, unsigned flags);
extern "C" void __tsan_mutex_post_lock(void* addr, unsigned flags, int recursion);
#endif

namespace mproc::detail {
namespace {

thread_local pid_t t_tid = 0;
// A fork child's only thread has a new tid: forget the cached one.
const int kAtforkRegistered = ::pthread_atfork(nullptr, nullptr, [] { t_tid = 0; });

pid_t self_tid() noexcept {
  if (t_tid == 0) t_tid = ::gettid();
  return t_tid;
}

void check(int r, const char* what) {
  if (r != 0) throw std::system_error(r, std::generic_category(), what);
}

const std::uint64_t kMutexKind = shm_kind(typeid(MutexState));

}  // namespace

void mutex_init(MutexState& s, bool recursive) {
  (void)kAtforkRegistered;
  pthread_mutexattr_t a;
  check(::pthread_mutexattr_init(&a), "pthread_mutexattr_init");
  ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutexattr_settype(&a, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
  const int r = ::pthread_mutex_init(&s.m, &a);
  ::pthread_mutexattr_destroy(&a);
  check(r, "pthread_mutex_init");
  s.recursive = recursive ? 1 : 0;
  s.count = 0;
  s.recovered = 0;
  s.deaths = 0;
}

Acquired mutex_acquire(MutexState& s, bool block, const Deadline& d) {
  int r = 0;
  if (!block) {
    r = ::pthread_mutex_trylock(&s.m);
  } else if (!d.at) {
    r = ::pthread_mutex_lock(&s.m);
  } else {
#if defined(__SANITIZE_THREAD__)
    // GCC 12's ThreadSanitizer does not intercept pthread_mutex_clocklock (it would then report
    // every later unlock): sanitizer builds wait on CLOCK_REALTIME for the same remaining time.
    const auto left = *d.at - Clock::now();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch() +
                        std::max(left, Clock::duration::zero()))
                        .count();
#else
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(d.at->time_since_epoch()).count();
#endif
    timespec ts{};
    if (ns > 0) {
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
#if defined(__SANITIZE_THREAD__)
    r = ::pthread_mutex_timedlock(&s.m, &ts);
    // Its interceptor records only a 0 result as a lock; EOWNERDEAD also leaves it held.
    if (r == EOWNERDEAD) {
      __tsan_mutex_pre_lock(&s.m, 0);
      __tsan_mutex_post_lock(&s.m, 0, 0);
    }
#else
    r = ::pthread_mutex_clocklock(&s.m, CLOCK_MONOTONIC, &ts);
#endif
  }
  switch (r) {
    case 0:
      if (s.count == 0) atom(s.recovered).store(0, std::memory_order_relaxed);
      ++s.count;
      return Acquired::kYes;
    case EOWNERDEAD:
      ::pthread_mutex_consistent(&s.m);
      atom(s.recovered).store(1, std::memory_order_relaxed);
      s.count = 1;  // the dead owner's recursion levels died with it
      std::atomic_ref<std::uint64_t>(s.deaths).fetch_add(1, std::memory_order_relaxed);
      return Acquired::kRecovered;
    case EBUSY:
    case ETIMEDOUT:
      return Acquired::kNo;
    case EDEADLK:  // trylock of an errorcheck robust mutex by its holder also says EDEADLK
      if (!block) return Acquired::kNo;
      throw LockError("acquire of a Lock the calling thread already holds would deadlock");
    case ENOTRECOVERABLE:
      throw LockError("the lock is not recoverable");
    case EAGAIN:
      throw LockError("RLock recursion limit reached");
    default:
      throw std::system_error(r, std::generic_category(), "pthread_mutex_lock");
  }
}

bool mutex_owned(const MutexState& s) noexcept {
  const int word =
      std::atomic_ref<int>(const_cast<int&>(s.m.__data.__lock)).load(std::memory_order_relaxed);
  return (word & FUTEX_TID_MASK) == self_tid();
}

bool mutex_locked(const MutexState& s) noexcept {
  const int word =
      std::atomic_ref<int>(const_cast<int&>(s.m.__data.__lock)).load(std::memory_order_relaxed);
  return (word & FUTEX_TID_MASK) != 0;
}

void mutex_release(MutexState& s) {
  if (!mutex_owned(s)) {
    throw LockError(s.recursive ? "cannot release an RLock the calling thread does not hold"
                                : "cannot release a Lock the calling thread does not hold");
  }
  --s.count;
  const int r = ::pthread_mutex_unlock(&s.m);
  if (r != 0) throw LockError("cannot release the lock: error " + std::to_string(r));
}

// ---- LockBase ------------------------------------------------------------------------------

namespace {
MutexState& state_of(const ShmRef& ref) {
  if (!ref) throw LockError("use of an empty lock handle");
  return *static_cast<MutexState*>(ref.get());
}
}  // namespace

LockBase::LockBase(bool recursive) : expect_(recursive ? 1 : 0) {
  ref_ = ShmRef::allocate(sizeof(MutexState), kMutexKind);
  mutex_init(*new (ref_.get()) MutexState, recursive);
  ref_.publish();
}

void LockBase::attach(const ShmHandleWire& w) {
  ShmRef ref = ShmRef::attach(w, kMutexKind);
  const auto& s = *static_cast<const MutexState*>(ref.get());
  if (expect_ >= 0 && static_cast<int>(s.recursive) != expect_) {
    throw SerializationError(expect_ ? "a Lock handle decoded as an RLock"
                                     : "an RLock handle decoded as a Lock");
  }
  expect_ = static_cast<int>(s.recursive);
  ref_ = std::move(ref);
}

bool LockBase::acquire(bool block) const {
  return mutex_acquire(state_of(ref_), block, Deadline::never()) != Acquired::kNo;
}

bool LockBase::acquire(bool block, std::chrono::nanoseconds timeout) const {
  return mutex_acquire(state_of(ref_), block,
                       block ? Deadline::after(timeout) : Deadline::never()) != Acquired::kNo;
}

bool LockBase::acquire_until(const Deadline& d) const {
  return mutex_acquire(state_of(ref_), true, d) != Acquired::kNo;
}

void LockBase::release() const {
  mutex_release(state_of(ref_));
}

bool LockBase::previous_owner_died() const noexcept {
  return ref_ &&
         atom(static_cast<MutexState*>(ref_.get())->recovered).load(std::memory_order_relaxed) != 0;
}

std::uint64_t LockBase::owner_deaths() const noexcept {
  if (!ref_) return 0;
  auto& s = *static_cast<MutexState*>(ref_.get());
  return std::atomic_ref<std::uint64_t>(s.deaths).load(std::memory_order_relaxed);
}

bool LockBase::is_owned() const noexcept {
  return ref_ && mutex_owned(*static_cast<const MutexState*>(ref_.get()));
}

bool LockBase::locked() const noexcept {
  return ref_ && mutex_locked(*static_cast<const MutexState*>(ref_.get()));
}

unsigned LockBase::release_all() const {
  MutexState& s = state_of(ref_);
  if (!mutex_owned(s)) throw LockError("the lock is not held by the calling thread");
  const unsigned levels = s.count;
  for (unsigned i = 0; i < levels; ++i) mutex_release(s);
  return levels;
}

void LockBase::reacquire(unsigned levels) const {
  MutexState& s = state_of(ref_);
  for (unsigned i = 0; i < levels; ++i) mutex_acquire(s, true, Deadline::never());
}

}  // namespace mproc::detail
