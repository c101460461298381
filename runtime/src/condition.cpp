// Condition: a futex sequence word in shared memory next to a Lock or RLock.
#include <climits>
#include <new>
#include <typeinfo>

#include "sync_internal.hpp"

namespace mproc {
namespace {

struct CondState {
  std::uint32_t seq;      // bumped by every notify; waiters sleep on it
  std::uint32_t waiters;  // changed only with the lock held
};

const std::uint64_t kCondKind = detail::shm_kind(typeid(CondState));

CondState& state_of(const detail::ShmRef& ref) {
  if (!ref) throw LockError("use of an empty condition handle");
  return *static_cast<CondState*>(ref.get());
}

}  // namespace

Condition::Condition(detail::LockBase&& lock) : lock_(std::move(lock)) {
  ref_ = detail::ShmRef::allocate(sizeof(CondState), kCondKind);
  new (ref_.get()) CondState{0, 0};
  ref_.publish();
}

void Condition::attach(const detail::ShmHandleWire& w) {
  ref_ = detail::ShmRef::attach(w, kCondKind);
}

bool Condition::wait_until(const detail::Deadline& d) const {
  CondState& s = state_of(ref_);
  if (!lock_.is_owned()) throw LockError("cannot wait on a Condition whose lock is not held");
  const std::uint32_t seq = detail::atom(s.seq).load(std::memory_order_acquire);
  detail::atom(s.waiters).fetch_add(1, std::memory_order_relaxed);
  const unsigned levels = lock_.release_all();
  bool notified = true;
  while (detail::atom(s.seq).load(std::memory_order_acquire) == seq) {
    if (!detail::futex_wait(&s.seq, seq, d)) {
      notified = detail::atom(s.seq).load(std::memory_order_acquire) != seq;
      break;
    }
  }
  lock_.reacquire(levels);
  detail::atom(s.waiters).fetch_sub(1, std::memory_order_relaxed);
  return notified;
}

void Condition::notify(unsigned n) const {
  CondState& s = state_of(ref_);
  if (!lock_.is_owned()) throw LockError("cannot notify on a Condition whose lock is not held");
  if (detail::atom(s.waiters).load(std::memory_order_relaxed) == 0 || n == 0) return;
  detail::atom(s.seq).fetch_add(1, std::memory_order_release);
  detail::futex_wake(&s.seq, n > static_cast<unsigned>(INT_MAX) ? INT_MAX : static_cast<int>(n));
}

}  // namespace mproc
