// mproc/synchronize.hpp — process-shared synchronization: Python's multiprocessing.Lock, RLock,
// Semaphore, BoundedSemaphore, Event, Condition and Barrier.
//
//   mproc::Lock lock;                        // Python: lock = multiprocessing.Lock()
//   pool.map(work, items_with(lock));        // handles pass to tasks (fork and spawn workers)
//   { std::lock_guard g(lock); ... }         // Python: with lock: ...
//   if (lock.acquire(true, 2s)) { ...; lock.release(); }
//
// Handles. Every type here is a small copyable handle to state in shared memory (see
// shared_memory.hpp for where that memory lives and how long): copies, fork children and
// decoded copies in other processes all refer to the same lock. Default construction creates
// a new object, like Python's Lock(). Every handle is cereal-serializable, so it can be a Pool
// task argument, a Pool initializer argument or a Process argument; a process that decodes a
// handle maps the creator's memory (the creator, or the sender, must still be alive then).
//
// Robustness (where Python hangs): Lock and RLock are PTHREAD_PROCESS_SHARED +
// PTHREAD_MUTEX_ROBUST mutexes. When a holder dies (SIGKILL, a crash, _exit) the next acquirer
// gets the lock normally — acquire() returns true — and previous_owner_died() then reports true
// until the lock is next acquired afresh; owner_deaths() counts such recoveries over the lock's
// life. We chose a queryable flag over an exception because an exception thrown from lock()
// while leaving the lock held would leak it past std::lock_guard / std::unique_lock (their
// constructors never run the destructor); a flag keeps RAII exact and lets code that does not
// care ignore it. The same applies to the RLock inside Value and Array. Semaphores have no owner:
// units a dead process held are lost (as in Python). An Event has no lock to die in. A Barrier
// whose internal lock is recovered from a dead process is broken (BrokenBarrierError), since
// the dead party may have left its count half-updated.
//
// Ownership: Lock and RLock are owned by the thread that acquired them (that is what makes
// robustness possible). Unlike Python's multiprocessing.Lock, releasing a Lock from another
// thread or process throws LockError; so does a blocking acquire of a Lock the calling thread
// already holds (Python would deadlock; a non-blocking attempt just returns false).
//
// Waiting. Lock and RLock block in the kernel's robust-futex protocol (pthread_mutex_clocklock
// on CLOCK_MONOTONIC). Semaphore, Event and the waiting side of Condition and Barrier are
// built directly on futexes in the shared mapping (FUTEX_WAIT_BITSET with an absolute
// CLOCK_MONOTONIC deadline), not on process-shared pthread_cond_t: glibc's condition variable
// keeps per-waiter counts in the shared object, and a waiter killed inside pthread_cond_wait can
// leave them such that a later pthread_cond_signal blocks forever, whereas a dead futex waiter
// leaves nothing behind. Every timeout is measured on the monotonic clock. A Condition wait may
// wake spuriously (as std::condition_variable; notify(n) may wake more than n): use
// wait_for(predicate, ...).
//
// Timeouts are std::chrono durations; a negative timeout is treated as zero.
//
// Thread safety: every member function may be called concurrently from any thread of any
// process holding a handle to the same object. One handle object must not be assigned to while
// another thread uses it (as with std::shared_ptr).
//
// Errors: constructors throw std::system_error when shared memory cannot be had; misuse throws
// LockError; Barrier::wait throws BrokenBarrierError; decoding a handle whose memory cannot be
// reached throws SerializationError.
#pragma once

#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/shm_arena.hpp"

namespace mproc {

namespace detail {

using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC

// "Wait forever" or "until this monotonic instant".
struct Deadline {
  std::optional<Clock::time_point> at;
  static Deadline never() { return {}; }
  static Deadline after(std::chrono::nanoseconds d) {
    return {Clock::now() + std::max(d, std::chrono::nanoseconds(0))};
  }
  template <class C, class D>
  static Deadline until(const std::chrono::time_point<C, D>& t) {
    return after(std::chrono::duration_cast<std::chrono::nanoseconds>(t - C::now()));
  }
};

struct EmptyHandle {};  // tag: a handle with no object yet (filled in by cereal load)

// lock / unlock / try_lock / try_lock_for / try_lock_until (BasicLockable, Lockable,
// TimedLockable, for std::lock_guard and std::unique_lock) from a type's acquire(block),
// acquire(block, timeout), acquire_until(deadline) and release().
template <class Derived>
class LockableOps {
 public:
  void lock() const { self().acquire(); }
  void unlock() const { self().release(); }
  bool try_lock() const { return self().acquire(false); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) const {
    return self().acquire(true, std::chrono::ceil<std::chrono::nanoseconds>(d));
  }
  template <class C, class D>
  bool try_lock_until(const std::chrono::time_point<C, D>& t) const {
    return self().acquire_until(Deadline::until(t));
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

// Lock and RLock share this implementation and shared layout (a robust mutex).
class LockBase : public LockableOps<LockBase> {
 public:
  explicit LockBase(EmptyHandle) {}

  // Blocks until acquired (block = true) or tries once (block = false). Returns whether it was
  // acquired. Throws LockError if block and this thread holds a (non-recursive) Lock.
  bool acquire(bool block = true) const;
  // As above, waiting at most `timeout` when block is true.
  bool acquire(bool block, std::chrono::nanoseconds timeout) const;
  // Throws LockError if the calling thread does not hold it.
  void release() const;

  // True when the current holder got the lock from a process or thread that died holding it
  // (meaningful while holding it). Cleared by the next acquisition from a live owner.
  bool previous_owner_died() const noexcept;
  // How many times this lock was recovered from a dead holder.
  std::uint64_t owner_deaths() const noexcept;
  // Whether the calling thread holds it.
  bool is_owned() const noexcept;
  // Python 3.14's Lock.locked() / RLock.locked(): whether any thread of any process holds it
  // now (a snapshot: it may change at once). False for an empty handle.
  bool locked() const noexcept;

  template <class Archive>
  void save(Archive& ar) const {
    ar(ref_.describe());
  }
  template <class Archive>
  void load(Archive& ar) {
    ShmHandleWire w;
    ar(w);
    attach(w);
  }

  // Internal (Condition): blocks until acquired by the deadline; releases every level of
  // recursion and returns how many; re-acquires that many levels.
  bool acquire_until(const Deadline& d) const;
  unsigned release_all() const;
  void reacquire(unsigned levels) const;

 protected:
  explicit LockBase(bool recursive);
  void attach(const ShmHandleWire& w);
  int expect_ = -1;  // what a decoded handle must name: -1 either, 0 a Lock, 1 an RLock
  ShmRef ref_;
};

}  // namespace detail

// Python's multiprocessing.Lock: a non-recursive, robust, process-shared mutex.
class Lock : public detail::LockBase {
 public:
  Lock() : LockBase(false) {}
  explicit Lock(detail::EmptyHandle e) : LockBase(e) { expect_ = 0; }
};

// Python's multiprocessing.RLock: re-entrant for the thread that holds it; each acquire needs
// its release. release() by any other thread or process throws LockError.
class RLock : public detail::LockBase {
 public:
  RLock() : LockBase(true) {}
  explicit RLock(detail::EmptyHandle e) : LockBase(e) { expect_ = 1; }
};

// Python's multiprocessing.Semaphore(value): a counter that acquire() decrements, waiting
// while it is zero, and release() increments. Lock-free (atomic + futex).
class Semaphore : public detail::LockableOps<Semaphore> {
  friend class detail::LockableOps<Semaphore>;

 public:
  explicit Semaphore(unsigned value = 1) : Semaphore(value, 0) {}
  explicit Semaphore(detail::EmptyHandle) {}

  bool acquire(bool block = true) const;
  bool acquire(bool block, std::chrono::nanoseconds timeout) const;
  // Adds one (BoundedSemaphore: throws LockError if that would exceed its initial value).
  void release() const;
  // The current count (Python's get_value()).
  unsigned get_value() const noexcept;

  template <class Archive>
  void save(Archive& ar) const {
    ar(ref_.describe());
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::ShmHandleWire w;
    ar(w);
    attach(w);
  }

 protected:
  Semaphore(unsigned value, unsigned max);
  bool acquire_until(const detail::Deadline& d) const;
  void attach(const detail::ShmHandleWire& w);
  detail::ShmRef ref_;
};

// Python's multiprocessing.BoundedSemaphore(value): release() above `value` throws LockError.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(unsigned value = 1) : Semaphore(value, value) {}
  explicit BoundedSemaphore(detail::EmptyHandle e) : Semaphore(e) {}
};

// Python's multiprocessing.Event. Lock-free (one futex word: a set bit and a generation, so a
// waiter woken by set() returns true even if clear() follows at once).
class Event {
 public:
  Event();
  explicit Event(detail::EmptyHandle) {}

  bool is_set() const noexcept;
  void set() const;
  void clear() const noexcept;
  // Waits until set and returns true (Python's wait() returns the flag). wait(timeout) returns
  // false if the timeout expired first.
  bool wait() const;
  bool wait(std::chrono::nanoseconds timeout) const;

  template <class Archive>
  void save(Archive& ar) const {
    ar(ref_.describe());
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::ShmHandleWire w;
    ar(w);
    attach(w);
  }

 private:
  bool wait_until(const detail::Deadline& d) const;
  void attach(const detail::ShmHandleWire& w);
  detail::ShmRef ref_;
};

// Python's multiprocessing.Condition(lock=None): with its own RLock, or a given Lock or RLock.
// wait and notify require the lock to be held by the calling thread (else LockError).
class Condition {
 public:
  Condition() : Condition(RLock()) {}
  explicit Condition(Lock lock) : Condition(static_cast<detail::LockBase&&>(lock)) {}
  explicit Condition(RLock lock) : Condition(static_cast<detail::LockBase&&>(lock)) {}
  explicit Condition(detail::EmptyHandle e) : lock_(e) {}

  // The lock's operations.
  bool acquire(bool block = true) const { return lock_.acquire(block); }
  bool acquire(bool block, std::chrono::nanoseconds timeout) const {
    return lock_.acquire(block, timeout);
  }
  void release() const { lock_.release(); }
  void lock() const { lock_.lock(); }
  void unlock() const { lock_.unlock(); }
  bool try_lock() const { return lock_.try_lock(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) const {
    return lock_.try_lock_for(d);
  }
  template <class C, class D>
  bool try_lock_until(const std::chrono::time_point<C, D>& t) const {
    return lock_.try_lock_until(t);
  }
  bool previous_owner_died() const noexcept { return lock_.previous_owner_died(); }

  // Releases the lock (every level of an RLock), waits for a notify, re-acquires it (without
  // a timeout). wait(timeout) returns false if the timeout expired. May wake spuriously.
  void wait() const { wait_until(detail::Deadline::never()); }
  bool wait(std::chrono::nanoseconds timeout) const {
    return wait_until(detail::Deadline::after(timeout));
  }
  // Waits until pred() is true; returns pred()'s last value (false only on timeout).
  template <class Pred>
  bool wait_for(Pred pred) const {
    while (!pred()) wait();
    return true;
  }
  template <class Pred>
  bool wait_for(Pred pred, std::chrono::nanoseconds timeout) const {
    const detail::Deadline d = detail::Deadline::after(timeout);
    bool result = pred();
    while (!result) {
      if (detail::Clock::now() >= *d.at) break;
      wait_until(d);
      result = pred();
    }
    return result;
  }
  // Wakes up to n waiters (possibly more); notify_all wakes all of them.
  void notify(unsigned n = 1) const;
  void notify_all() const { notify(UINT_MAX); }

  template <class Archive>
  void save(Archive& ar) const {
    ar(lock_, ref_.describe());
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::ShmHandleWire w;
    ar(lock_, w);
    attach(w);
  }

  bool wait_until(const detail::Deadline& d) const;

 private:
  explicit Condition(detail::LockBase&& lock);
  void attach(const detail::ShmHandleWire& w);
  detail::LockBase lock_;
  detail::ShmRef ref_;
};

// Python's multiprocessing.Barrier(parties, action=None, timeout=None). The party that
// completes a round runs `action` (a plain function, so that it can be sent to a spawned
// process by name) before the others are released; if it throws, the barrier breaks and wait()
// rethrows it there. A wait that times out breaks the barrier (as in Python).
class Barrier {
 public:
  using Action = void (*)();
  // A one-party barrier (default-constructible so that a Barrier can be a task parameter).
  Barrier() : Barrier(1u) {}
  // Throws std::invalid_argument when parties is 0.
  explicit Barrier(unsigned parties, Action action = nullptr,
                   std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  explicit Barrier(detail::EmptyHandle) {}

  // Returns this party's arrival index, 0 .. parties-1. Throws BrokenBarrierError if the
  // barrier is or becomes broken (abort, reset, timeout, the action threw elsewhere).
  unsigned wait() const;
  unsigned wait(std::chrono::nanoseconds timeout) const;
  // Back to the initial state; parties waiting now get BrokenBarrierError.
  void reset() const;
  // Puts the barrier into the broken state; waiting and future wait() calls throw.
  void abort() const;

  unsigned parties() const noexcept;
  unsigned n_waiting() const noexcept;
  bool broken() const noexcept;

  template <class Archive>
  void save(Archive& ar) const {
    ar(ref_.describe(), encode_action());
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::ShmHandleWire w;
    std::vector<char> action;
    ar(w, action);
    attach(w, action);
  }

 private:
  unsigned wait_until(const detail::Deadline& d) const;
  std::vector<char> encode_action() const;
  void attach(const detail::ShmHandleWire& w, const std::vector<char>& action);
  Action action_ = nullptr;
  detail::ShmRef ref_;
};

}  // namespace mproc
