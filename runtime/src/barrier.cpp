// Barrier: Python's threading.Barrier state machine (filling, draining, resetting, broken)
// in shared memory, under a robust mutex, with waiters parked on a futex word.
#include <climits>
#include <new>
#include <typeinfo>

#include "mproc/serialize/detail/callable.hpp"
#include "sync_internal.hpp"

namespace mproc {
namespace {

enum : std::int32_t { kFilling = 0, kDraining = 1, kResetting = -1, kBroken = -2 };

struct BarrierState {
  detail::MutexState mu;
  std::uint32_t parties;
  std::uint32_t count;  // parties inside wait()
  std::int32_t state;
  std::uint32_t word;       // bumped on every state change; waiters sleep on it
  std::int64_t timeout_ns;  // default timeout, -1: none
};

const std::uint64_t kBarrierKind = detail::shm_kind(typeid(BarrierState));

BarrierState& state_of(const detail::ShmRef& ref) {
  if (!ref) throw LockError("use of an empty barrier handle");
  return *static_cast<BarrierState*>(ref.get());
}

void notify_all(BarrierState& s) {
  detail::atom(s.word).fetch_add(1, std::memory_order_release);
  detail::futex_wake(&s.word, INT_MAX);
}

void break_barrier(BarrierState& s) {
  s.state = kBroken;
  notify_all(s);
}

// Holds the barrier's lock for a scope. A lock recovered from a dead process breaks the
// barrier: the dead party may have left count and state half-updated.
class Guard {
 public:
  explicit Guard(BarrierState& s) : s_(s) { lock(); }
  ~Guard() {
    if (held_) detail::mutex_release(s_.mu);
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  void lock() {
    if (detail::mutex_acquire(s_.mu, true, detail::Deadline::never()) ==
        detail::Acquired::kRecovered) {
      break_barrier(s_);
    }
    held_ = true;
  }
  // Releases the lock, sleeps until notified or the deadline, re-locks. False on timeout.
  bool wait(const detail::Deadline& d) {
    const std::uint32_t w = detail::atom(s_.word).load(std::memory_order_acquire);
    held_ = false;
    detail::mutex_release(s_.mu);
    const bool in_time = detail::futex_wait(&s_.word, w, d);
    lock();
    return in_time || detail::atom(s_.word).load(std::memory_order_acquire) != w;
  }

 private:
  BarrierState& s_;
  bool held_ = false;
};

}  // namespace

Barrier::Barrier(unsigned parties, Action action, std::optional<std::chrono::nanoseconds> timeout)
    : action_(action) {
  if (parties == 0) throw std::invalid_argument("Barrier: parties must be at least 1");
  ref_ = detail::ShmRef::allocate(sizeof(BarrierState), kBarrierKind);
  auto* s = new (ref_.get()) BarrierState{};
  detail::mutex_init(s->mu, false);
  s->parties = parties;
  s->count = 0;
  s->state = kFilling;
  s->word = 0;
  s->timeout_ns = timeout ? std::max<std::int64_t>(0, timeout->count()) : -1;
  ref_.publish();
}

void Barrier::attach(const detail::ShmHandleWire& w, const std::vector<char>& action) {
  detail::ShmRef ref = detail::ShmRef::attach(w, kBarrierKind);
  if (static_cast<BarrierState*>(ref.get())->parties == 0) {
    throw SerializationError("corrupt barrier handle");
  }
  Action fn = nullptr;
  if (!action.empty()) {
    detail::WireInputArchive in(std::span<const char>(action.data(), action.size()));
    fn = reinterpret_cast<Action>(detail::decode_function_location(in));
  }
  ref_ = std::move(ref);
  action_ = fn;
}

std::vector<char> Barrier::encode_action() const {
  std::vector<char> out;
  if (action_ != nullptr) {
    detail::encode_function_location(out, reinterpret_cast<const void*>(action_));
  }
  return out;
}

unsigned Barrier::wait() const {
  const std::int64_t t = state_of(ref_).timeout_ns;
  return wait_until(t < 0 ? detail::Deadline::never()
                          : detail::Deadline::after(std::chrono::nanoseconds(t)));
}

unsigned Barrier::wait(std::chrono::nanoseconds timeout) const {
  return wait_until(detail::Deadline::after(timeout));
}

unsigned Barrier::wait_until(const detail::Deadline& d) const {
  BarrierState& s = state_of(ref_);
  Guard g(s);
  // Enter: wait for the previous round to drain or a reset to finish.
  while (s.state == kDraining || s.state == kResetting) {
    if (!g.wait(d)) {
      break_barrier(s);
      throw BrokenBarrierError("Barrier: timed out waiting for the previous round to drain");
    }
  }
  if (s.state < 0) throw BrokenBarrierError("Barrier is broken");
  const unsigned index = s.count++;
  // Leave: the last party out of a drained or reset round opens the barrier again.
  auto leave = [&] {
    if (--s.count == 0 && (s.state == kDraining || s.state == kResetting)) {
      s.state = kFilling;
      notify_all(s);
    }
  };
  try {
    if (index + 1 == s.parties) {
      try {
        if (action_ != nullptr) action_();
      } catch (...) {
        break_barrier(s);
        throw;
      }
      s.state = kDraining;
      notify_all(s);
    } else {
      while (s.state == kFilling) {
        if (!g.wait(d) && s.state == kFilling) {
          break_barrier(s);
          throw BrokenBarrierError("Barrier: timed out");
        }
      }
      if (s.state < 0) throw BrokenBarrierError("Barrier was broken while waiting");
    }
  } catch (...) {
    leave();
    throw;
  }
  leave();
  return index;
}

void Barrier::reset() const {
  BarrierState& s = state_of(ref_);
  Guard g(s);
  if (s.count > 0) {
    if (s.state == kFilling || s.state == kBroken) s.state = kResetting;
  } else {
    s.state = kFilling;
  }
  notify_all(s);
}

void Barrier::abort() const {
  BarrierState& s = state_of(ref_);
  Guard g(s);
  break_barrier(s);
}

unsigned Barrier::parties() const noexcept {
  return ref_ ? static_cast<BarrierState*>(ref_.get())->parties : 0;
}

unsigned Barrier::n_waiting() const noexcept {
  if (!ref_) return 0;
  auto& s = *static_cast<BarrierState*>(ref_.get());
  try {
    Guard g(s);
    return s.state == kFilling ? s.count : 0;
  } catch (...) {
    return 0;
  }
}

bool Barrier::broken() const noexcept {
  if (!ref_) return false;
  auto& s = *static_cast<BarrierState*>(ref_.get());
  try {
    Guard g(s);
    return s.state == kBroken;
  } catch (...) {
    return false;
  }
}

}  // namespace mproc
