// Semaphore and BoundedSemaphore: an atomic count in shared memory, waiters parked on it with a
// futex.
#include <new>
#include <typeinfo>

#include "sync_internal.hpp"

namespace mproc {
namespace {

struct SemState {
  std::uint32_t count;
  std::uint32_t waiters;
  std::uint32_t max;  // 0: unbounded
};

const std::uint64_t kSemKind = detail::shm_kind(typeid(SemState));

SemState& state_of(const detail::ShmRef& ref) {
  if (!ref) throw LockError("use of an empty semaphore handle");
  return *static_cast<SemState*>(ref.get());
}

bool try_take(SemState& s) noexcept {
  auto c = detail::atom(s.count);
  std::uint32_t v = c.load(std::memory_order_relaxed);
  while (v > 0) {
    if (c.compare_exchange_weak(v, v - 1, std::memory_order_acquire)) return true;
  }
  return false;
}

}  // namespace

Semaphore::Semaphore(unsigned value, unsigned max) {
  ref_ = detail::ShmRef::allocate(sizeof(SemState), kSemKind);
  new (ref_.get()) SemState{value, 0, max};
  ref_.publish();
}

void Semaphore::attach(const detail::ShmHandleWire& w) {
  ref_ = detail::ShmRef::attach(w, kSemKind);
}

bool Semaphore::acquire(bool block) const {
  return block ? acquire_until(detail::Deadline::never()) : try_take(state_of(ref_));
}

bool Semaphore::acquire(bool block, std::chrono::nanoseconds timeout) const {
  return block ? acquire_until(detail::Deadline::after(timeout)) : try_take(state_of(ref_));
}

bool Semaphore::acquire_until(const detail::Deadline& d) const {
  SemState& s = state_of(ref_);
  for (;;) {
    if (try_take(s)) return true;
    detail::atom(s.waiters).fetch_add(1, std::memory_order_seq_cst);
    bool in_time = true;
    if (detail::atom(s.count).load(std::memory_order_seq_cst) == 0) {
      in_time = detail::futex_wait(&s.count, 0, d);
    }
    detail::atom(s.waiters).fetch_sub(1, std::memory_order_relaxed);
    if (!in_time) return try_take(s);
  }
}

void Semaphore::release() const {
  SemState& s = state_of(ref_);
  auto c = detail::atom(s.count);
  if (s.max != 0) {
    std::uint32_t v = c.load(std::memory_order_relaxed);
    do {
      if (v >= s.max) throw LockError("BoundedSemaphore released too many times");
    } while (!c.compare_exchange_weak(v, v + 1, std::memory_order_seq_cst));
  } else {
    c.fetch_add(1, std::memory_order_seq_cst);
  }
  if (detail::atom(s.waiters).load(std::memory_order_seq_cst) > 0) detail::futex_wake(&s.count, 1);
}

unsigned Semaphore::get_value() const noexcept {
  if (!ref_) return 0;
  return detail::atom(static_cast<SemState*>(ref_.get())->count).load(std::memory_order_relaxed);
}

}  // namespace mproc
