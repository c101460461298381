// worker_life.hpp — the life-cycle of one pool worker, as the coordinator sees it.
//
//   retire()   kRunning -> kRetiring
//   hang_up()  kRunning, kRetiring -> kHungUp;  kReaped -> kDead    (its socket ended)
//   reaped()   kRunning, kRetiring -> kReaped;  kHungUp -> kDead    (its exit was reported)
//   bury()     kDead -> kGone                                       (finalized)
//   abandon()  any -> kGone                                         (forced shutdown)
//
// Its socket and its process end separately, in either order: both must have ended (kDead)
// before the worker is finalized, so that no result it wrote is lost and no task is blamed on a
// worker that is still running it. A transition from a state not listed is a no-op and returns
// false (the events it stands for can repeat: a protocol fault then EOF, say).
#pragma once

#include <cstdint>

namespace mproc::detail {

class WorkerLife {
 public:
  enum class State : std::uint8_t {
    kRunning,   // takes tasks
    kRetiring,  // has its last tasks (maxtasksperchild quota handed out, or over its memory cap):
                // finishes them and gets no more; its successor is started
    kHungUp,    // its socket ended (EOF, an error, a protocol fault): waits for its exit report
    kReaped,    // its exit was reported first: what it wrote before dying is read next
    kDead,      // both ended: to be finalized
    kGone,      // finalized: out of the pool; handlers still holding it must ignore it
  };

  State state() const noexcept { return state_; }
  bool takes_tasks() const noexcept { return state_ == State::kRunning; }
  // Nothing more is read from or written to its socket.
  bool socket_ended() const noexcept {
    return state_ == State::kHungUp || state_ == State::kDead || state_ == State::kGone;
  }
  // Its process is reaped (or abandoned): never signal its pid again.
  bool exited() const noexcept {
    return state_ == State::kReaped || state_ == State::kDead || state_ == State::kGone;
  }
  bool dead() const noexcept { return state_ == State::kDead; }
  bool gone() const noexcept { return state_ == State::kGone; }

  // kRunning -> kRetiring.
  bool retire() noexcept { return move(State::kRunning, State::kRetiring); }
  // Its socket ended. kRunning/kRetiring -> kHungUp, kReaped -> kDead.
  bool hang_up() noexcept {
    return move(State::kRunning, State::kHungUp) || move(State::kRetiring, State::kHungUp) ||
           move(State::kReaped, State::kDead);
  }
  // Its exit was reported. kRunning/kRetiring -> kReaped, kHungUp -> kDead.
  bool reaped() noexcept {
    return move(State::kRunning, State::kReaped) || move(State::kRetiring, State::kReaped) ||
           move(State::kHungUp, State::kDead);
  }
  // kDead -> kGone: the caller finalizes it.
  bool bury() noexcept { return move(State::kDead, State::kGone); }
  // Any -> kGone: the pool stops without waiting for it.
  void abandon() noexcept { state_ = State::kGone; }

 private:
  bool move(State from, State to) noexcept {
    if (state_ != from) return false;
    state_ = to;
    return true;
  }

  State state_ = State::kRunning;
};

}  // namespace mproc::detail
