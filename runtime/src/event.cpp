// Event: one futex word in shared memory — bit 0 is the flag, the rest counts set() calls, so
// a waiter woken by a set() that a clear() follows at once still returns true.
#include <climits>
#include <new>
#include <typeinfo>

#include "sync_internal.hpp"

namespace mproc {
namespace {

struct EventState {
  std::uint32_t word;
  std::uint32_t waiters;
};

const std::uint64_t kEventKind = detail::shm_kind(typeid(EventState));

EventState& state_of(const detail::ShmRef& ref) {
  if (!ref) throw LockError("use of an empty event handle");
  return *static_cast<EventState*>(ref.get());
}

}  // namespace

Event::Event() {
  ref_ = detail::ShmRef::allocate(sizeof(EventState), kEventKind);
  new (ref_.get()) EventState{0, 0};
  ref_.publish();
}

void Event::attach(const detail::ShmHandleWire& w) {
  ref_ = detail::ShmRef::attach(w, kEventKind);
}

bool Event::is_set() const noexcept {
  return ref_ &&
         (detail::atom(static_cast<EventState*>(ref_.get())->word).load(std::memory_order_acquire) &
          1u) != 0;
}

void Event::set() const {
  EventState& s = state_of(ref_);
  auto w = detail::atom(s.word);
  std::uint32_t v = w.load(std::memory_order_relaxed);
  do {
    if (v & 1u) return;
  } while (!w.compare_exchange_weak(v, (v + 2) | 1u, std::memory_order_seq_cst));
  if (detail::atom(s.waiters).load(std::memory_order_seq_cst) > 0) {
    detail::futex_wake(&s.word, INT_MAX);
  }
}

void Event::clear() const noexcept {
  if (ref_) {
    detail::atom(static_cast<EventState*>(ref_.get())->word)
        .fetch_and(~1u, std::memory_order_seq_cst);
  }
}

bool Event::wait() const {
  return wait_until(detail::Deadline::never());
}

bool Event::wait(std::chrono::nanoseconds timeout) const {
  return wait_until(detail::Deadline::after(timeout));
}

bool Event::wait_until(const detail::Deadline& d) const {
  EventState& s = state_of(ref_);
  auto w = detail::atom(s.word);
  const std::uint32_t start = w.load(std::memory_order_acquire);
  if (start & 1u) return true;
  detail::atom(s.waiters).fetch_add(1, std::memory_order_seq_cst);
  bool result = false;
  for (;;) {
    std::uint32_t now = w.load(std::memory_order_seq_cst);
    if ((now & 1u) || (now >> 1) != (start >> 1)) {
      result = true;
      break;
    }
    if (!detail::futex_wait(&s.word, now, d)) {
      now = w.load(std::memory_order_acquire);
      result = (now & 1u) || (now >> 1) != (start >> 1);
      break;
    }
  }
  detail::atom(s.waiters).fetch_sub(1, std::memory_order_relaxed);
  return result;
}

}  // namespace mproc
