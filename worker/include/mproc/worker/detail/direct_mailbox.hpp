// mproc/worker/detail/direct_mailbox.hpp — where a worker answers a call made to it directly
// (a blocking Pool::apply that found it idle, pool/src/direct_lanes.hpp): the reply goes to
// the waiting caller through shared memory, not through the coordinator's I/O thread. One
// mailbox per worker, in its progress slot (WorkerTaskCounters), shared by three parties:
//
//   caller     post          kIdle -> kPosted            before it writes the task frame
//              (sleeps)      kPosted -> kPostedAsleep    before its futex wait
//              withdraw      kPosted -> kIdle            its write failed; nothing was sent
//              reset         any -> kIdle                after it has taken the outcome
//   worker     reply         kPosted|kPostedAsleep -> kReplied (wakes a sleeper)
//   I/O thread settle(to)    kIdle|kPosted|kPostedAsleep -> kReplyElsewhere | kLost
//                            (the reply came on the socket: too large for the mailbox; or
//                            the worker is lost: the caller falls back or fails the task)
//
// Every transition is a compare-and-swap on one word, so of a worker's reply and the I/O
// thread's verdict on a dying worker exactly one wins, and the caller sees exactly one outcome.
// The states and transitions are pure functions of the word: direct_mailbox_test runs them
// without processes.
//
// Thread safety: each operation is atomic on the word; `length` and `reply` are written by the
// worker before it publishes kReplied (release) and read by the caller after it sees it
// (acquire).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace mproc::detail {

enum MailState : std::uint32_t {
  kMailIdle = 0,
  kMailPosted = 1,
  kMailPostedAsleep = 2,
  kMailReplied = 3,
  kMailReplyElsewhere = 4,
  kMailLost = 5,
};

struct DirectMailbox {
  // Replies up to this size (header included) travel here; larger ones on the socket.
  static constexpr std::size_t kReplyBytes = 8192 - 24;

  std::uint32_t word;  // MailState; used through std::atomic_ref (and as a futex word)
  std::uint32_t length;
  // The pid of the worker that answers here (mail_own): the coordinator lends only a worker
  // that has said so, since one that could not map its slot answers on its socket only.
  std::int32_t owner;
  std::uint32_t unused;
  // The id of the direct call the worker began (mail_begin): once the worker is dead, the
  // coordinator tells by it whether the call may have run (WorkerLostError) or never started
  // (it is queued the ordinary way instead).
  std::uint64_t started;
  char reply[kReplyBytes];
};

// Worker, once at start: it answers direct calls here.
inline void mail_own(DirectMailbox& box, std::int32_t pid) noexcept {
  std::atomic_ref<std::int32_t>(box.owner).store(pid, std::memory_order_release);
}
inline std::int32_t mail_owner(DirectMailbox& box) noexcept {
  return std::atomic_ref<std::int32_t>(box.owner).load(std::memory_order_acquire);
}

// Worker: call `id` begins.
inline void mail_begin(DirectMailbox& box, std::uint64_t id) noexcept {
  std::atomic_ref<std::uint64_t>(box.started).store(id, std::memory_order_release);
}
inline std::uint64_t mail_started(DirectMailbox& box) noexcept {
  return std::atomic_ref<std::uint64_t>(box.started).load(std::memory_order_acquire);
}

inline std::atomic_ref<std::uint32_t> mail_word(DirectMailbox& box) noexcept {
  return std::atomic_ref<std::uint32_t>(box.word);
}

inline bool mail_cas(DirectMailbox& box, std::uint32_t from, std::uint32_t to) noexcept {
  return mail_word(box).compare_exchange_strong(from, to, std::memory_order_acq_rel,
                                                std::memory_order_acquire);
}

// Caller: claims the mailbox for one call. False: the I/O thread has already settled it (the
// worker is lost): the call must go the ordinary way.
inline bool mail_post(DirectMailbox& box) noexcept {
  return mail_cas(box, kMailIdle, kMailPosted);
}
// Caller: nothing was sent after all. False: an outcome is already there (take it).
inline bool mail_withdraw(DirectMailbox& box) noexcept {
  return mail_cas(box, kMailPosted, kMailIdle);
}
inline void mail_reset(DirectMailbox& box) noexcept {
  mail_word(box).store(kMailIdle, std::memory_order_release);
}
inline bool mail_pending(std::uint32_t state) noexcept {
  return state == kMailPosted || state == kMailPostedAsleep;
}

// Moves a pending word to `to`; returns the state it replaced (the caller of this wakes the
// word's sleeper when that was kMailPostedAsleep), or the outcome already there.
inline std::uint32_t mail_complete(DirectMailbox& box, std::uint32_t to) noexcept {
  std::uint32_t seen = mail_word(box).load(std::memory_order_acquire);
  while (mail_pending(seen)) {
    if (mail_word(box).compare_exchange_weak(seen, to, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
      return seen;
    }
  }
  return seen;
}

// I/O thread: the outcome is not in the mailbox (kMailReplyElsewhere or kMailLost). Settles an
// idle word too, so that a caller about to post falls back. Returns whether it settled it (the
// worker had not replied) and whether a sleeper must be woken.
struct Settled {
  bool settled = false;
  bool wake = false;
};
inline Settled mail_settle(DirectMailbox& box, std::uint32_t to) noexcept {
  std::uint32_t seen = mail_word(box).load(std::memory_order_acquire);
  while (seen == kMailIdle || mail_pending(seen)) {
    if (mail_word(box).compare_exchange_weak(seen, to, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
      return {true, seen == kMailPostedAsleep};
    }
  }
  return {};
}

// Worker: copies `frame` into the mailbox and publishes it. False when it does not fit (send it
// on the socket instead). True also when the caller's call was settled meanwhile (the reply is
// then dropped: its caller already has an outcome). `wake` says whether to wake the caller.
struct Delivered {
  bool fits = false;
  bool wake = false;
};
inline Delivered mail_reply(DirectMailbox& box, std::span<const char> frame) noexcept {
  if (frame.size() > DirectMailbox::kReplyBytes) return {};
  std::memcpy(box.reply, frame.data(), frame.size());
  box.length = static_cast<std::uint32_t>(frame.size());
  return {true, mail_complete(box, kMailReplied) == kMailPostedAsleep};
}

}  // namespace mproc::detail
