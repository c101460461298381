// Coordinator::Impl, its direct calls (mproc/pool/detail/direct_lane.hpp): a blocking apply() that
// finds a worker idle writes its task to the worker's socket itself and takes the reply from the
// worker's mailbox; the I/O thread lends idle workers, takes them back for queued tasks, passes on
// a reply too large for a mailbox, and settles a lent call whose worker dies.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "coordinator_impl.hpp"
#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/futex.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"

namespace mproc::detail {
namespace {

// How long a caller polls its mailbox before it sleeps, and asks its worker to poll its socket
// for the next call: a wake-up on another CPU costs tens of µs on a VM, a short poll less.
constexpr auto kCallerSpin = std::chrono::microseconds(60);
constexpr std::uint64_t kWorkerSpinNs = 60'000;
// Larger task frames take the queue: the socket buffer would split them anyway.
constexpr std::size_t kMaxDirectFrame = 64 * 1024;

constexpr auto kLoadSample = std::chrono::milliseconds(1);

// The machine's runnable threads now (the fourth field of /proc/loadavg: "running/total"), or
// 0 when it cannot be read (then nobody polls).
int runnable_threads() noexcept {
  const int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // "0.52 0.58 0.59 3/467 12345"
  const char* p = buf;
  for (int field = 0; field < 3 && p; ++field) {
    p = std::strchr(p, ' ');
    if (p) ++p;
  }
  return p ? std::atoi(p) : 0;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Writes all of `bytes`; 0, or the errno that stopped it. A worker that is alive reads what it
// is sent, so a full socket only waits.
int send_all(int fd, std::span<const char> bytes, bool& partial) noexcept {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    partial = off != 0;
    return n < 0 ? errno : EPIPE;
  }
  return 0;
}

void set_frame_kind(Bytes& frame, FrameKind kind) noexcept {
  frame[offsetof(FrameHeader, kind)] = static_cast<char>(kind);
}

// Completes `t` from a reply frame (header included); returns whether it was a value.
bool complete_from_frame(Task& t, std::span<const char> frame, std::size_t max_frame) noexcept {
  std::optional<FrameHeader> h;
  try {
    h = parse_frame_header(frame, max_frame);
    if (!h || frame.size() != kFrameHeaderSize + h->length || h->task_id != t.id ||
        (h->kind != FrameKind::kResultOk && h->kind != FrameKind::kResultErr)) {
      throw SerializationError("corrupt reply to a direct call");
    }
  } catch (...) {
    t.on_error(std::current_exception());
    return false;
  }
  t.run_ns = h->aux;
  const auto payload = frame.subspan(kFrameHeaderSize);
  if (h->kind == FrameKind::kResultOk) {
    t.on_ok(payload);
    return true;
  }
  t.on_error(decode_exception(payload));
  return false;
}

}  // namespace

// ---- the caller's side ----------------------------------------------------------------------

bool Coordinator::Impl::run_now(std::unique_ptr<Task>& task) {
  Task& t = *task;
  if (!lanes_ || t.frame.size() > kMaxDirectFrame) return false;
  DirectLane* lane = claim_lane();
  if (!lane) return false;
  lent_.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard lock(state_.mu);
    state_.add_tasks_locked(1);  // throws when the pool no longer takes tasks
  } catch (...) {
    release_lane(*lane);
    throw;
  }
  // From here the call is counted as outstanding until its outcome is in: a call that cannot
  // go directly is queued with that count (requeue_counted), so a close() meanwhile cannot
  // refuse a call accepted before it.
  DirectMailbox& box = *lane->box;
  lane->task_id.store(t.id, std::memory_order_release);  // before the post: see drop_lane
  if (!mail_post(box)) {                                 // its worker is lost
    release_lane(*lane);
    requeue_counted(task);
    return true;
  }
  const bool spin = should_poll();
  set_frame_kind(t.frame, FrameKind::kTaskDirect);
  set_frame_aux(t.frame, spin ? kWorkerSpinNs : 0);
  bool partial = false;
  if (const int err = send_all(lane->fd, t.frame, partial)) {
    // Half a frame would corrupt the stream: end it (the worker exits; the I/O thread settles).
    if (partial) ::shutdown(lane->fd, SHUT_RDWR);
    if (!partial && mail_withdraw(box)) {
      get_logger()->debug("direct call {} not sent ({}); queueing it", t.id, strerror(err));
      release_lane(*lane);
      requeue_counted(task);
      return true;
    }
  }
  const std::uint32_t outcome = await_mail(box, spin);
  bool never_began = false;
  if (outcome == kMailReplied) {
    lane->calls.fetch_add(1, std::memory_order_relaxed);
    tally_direct(t, complete_from_frame(t, {box.reply, box.length}, opts_.max_frame_bytes));
  } else if (outcome == kMailReplyElsewhere) {
    lane->calls.fetch_add(1, std::memory_order_relaxed);
    tally_direct(t, complete_from_frame(t, lane->reply, opts_.max_frame_bytes));
    lane->reply.clear();
  } else if (lane->lost) {  // kMailLost: the worker died with it, or the pool stopped
    t.on_error(std::exchange(lane->lost, nullptr));
    std::lock_guard lock(tally_.mu);
    ++tally_.lost;
  } else {  // kMailLost before the worker began it: it never ran
    never_began = true;
  }
  // Only the outcome this call saw is cleared: once the lane is unbound the mailbox may be
  // another worker's (its slot reused) and must not be touched blindly.
  mail_cas(box, outcome, kMailIdle);
  // Given back before the call counts as finished: join() may end the pool as soon as it is.
  release_lane(*lane);
  if (never_began) {
    requeue_counted(task);
  } else {
    task_finished(1);
  }
  return true;
}

// A call that was counted as outstanding and did not run directly goes to the queue with that
// count, as a kTask.
void Coordinator::Impl::requeue_counted(std::unique_ptr<Task>& task) {
  set_frame_kind(task->frame, FrameKind::kTask);
  set_frame_aux(task->frame, 0);
  bool wake = false;
  {
    std::lock_guard lock(state_.mu);
    inbox_.push_back(std::move(task));
    wake = !wake_pending_;
    wake_pending_ = true;
  }
  if (wake) asio::post(io_, [this] { dispatch(); });
}

// Polling pays only while the caller and its worker each have a CPU nobody else wants: the
// pool's own load is known at once, the machine's is sampled at most every kLoadSample.
bool Coordinator::Impl::should_poll() noexcept {
  const int ours =
      2 * lent_.load(std::memory_order_relaxed) + io_busy_.load(std::memory_order_relaxed);
  const std::int64_t now = Clock::now().time_since_epoch().count();
  std::int64_t last = load_sampled_.load(std::memory_order_relaxed);
  if (now - last > std::chrono::nanoseconds(kLoadSample).count() &&
      load_sampled_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    const int runnable = runnable_threads();
    const bool polled = polling_.load(std::memory_order_relaxed);
    polling_.store(runnable > 0 && polling_pays(runnable, polled, ours, cpus_),
                   std::memory_order_relaxed);
  }
  return polling_.load(std::memory_order_relaxed) && ours <= cpus_;
}

DirectLane* Coordinator::Impl::claim_lane() noexcept {
  // The lane used last first: its worker may be polling for this very call.
  const unsigned first = lane_hint_.load(std::memory_order_relaxed);
  for (unsigned i = 0; i < nlanes_; ++i) {
    const unsigned k = (first + i) % nlanes_;
    if (lane_claim(lanes_[k])) {
      lane_hint_.store(k, std::memory_order_relaxed);
      return &lanes_[k];
    }
  }
  return nullptr;
}

void Coordinator::Impl::release_lane(DirectLane& lane) noexcept {
  lent_.fetch_sub(1, std::memory_order_relaxed);
  switch (lane_release(lane)) {
    case LaneReturn::kReopened:
      break;
    case LaneReturn::kWanted:
      try {
        asio::post(io_, [this] { dispatch(); });
      } catch (...) {  // no memory: the next event's dispatch finds the worker
      }
      break;
    case LaneReturn::kCloseFd:
      ::close(std::exchange(lane.fd, -1));
      lane_shut(lane);
      // A new worker in the lost one's slot waits for this lane to let go of the mailbox.
      try {
        asio::post(io_, [this] { lend_idle_workers(); });
      } catch (...) {  // no memory: the next dispatch lends it
      }
      break;
  }
}

std::uint32_t Coordinator::Impl::await_mail(DirectMailbox& box, bool spin) noexcept {
  auto word = mail_word(box);
  std::uint32_t s = word.load(std::memory_order_acquire);
  if (spin && mail_pending(s)) {
    const auto until = Clock::now() + kCallerSpin;
    for (int n = 0; mail_pending(s); ++n) {
      cpu_relax();
      s = word.load(std::memory_order_acquire);
      if ((n & 63) == 63 && Clock::now() > until) break;
    }
  }
  while (mail_pending(s)) {
    if (s == kMailPosted &&
        !word.compare_exchange_strong(s, kMailPostedAsleep, std::memory_order_acq_rel)) {
      continue;  // `s` is what is there now
    }
    futex_wait(&box.word, kMailPostedAsleep, Deadline::never(), FutexScope::kShared);
    s = word.load(std::memory_order_acquire);
  }
  return s;
}

void Coordinator::Impl::tally_direct(const Task& t, bool ok) noexcept {
  std::lock_guard lock(tally_.mu);
  ++(ok ? tally_.completed : tally_.exceptions);
  tally_.run_times.add(t.run_ns);
}

// ---- the I/O thread's side ------------------------------------------------------------------

bool Coordinator::Impl::lanes_wanted(const PoolOptions& o) noexcept {
  // A lent call has no time limit, retry, quota or memory check of the I/O thread's: pools
  // with any of these keep every task on the queue.
  return o.maxtasksperchild == 0 && o.max_memory_per_child == 0 && o.max_retries == 0 &&
         o.task_timeout.count() == 0 && o.soft_timeout.count() == 0;
}

void Coordinator::Impl::reclaim_lanes() {
  for (auto& w : workers_) {
    if (w->lane) lane_reclaim(*w->lane);
  }
}

void Coordinator::Impl::lend_idle_workers() {
  if (!lanes_) return;
  int busy = 0;
  for (auto& w : workers_) busy += w->link.held_count() != 0 ? 1 : 0;
  io_busy_.store(busy, std::memory_order_relaxed);
  if (!pending_.empty() || shutting_down_ || broken_) return;
  for (auto& w : workers_) {
    const bool idle = w->pid > 0 && w->life.takes_tasks() && w->init_acked && !w->fault &&
                      !w->timed_out && !w->cancelled_head && w->link.held_count() == 0 &&
                      !w->link.writing && w->slot != ProgressSlots::kNoSlot;
    if (!idle) continue;
    if (!w->lane && !bind_lane(*w)) continue;  // no lane free, or its mailbox still held
    std::uint32_t shut = DirectLane::kShut;
    w->lane->gate.compare_exchange_strong(shut, DirectLane::kOpen, std::memory_order_acq_rel);
  }
}

bool Coordinator::Impl::bind_lane(Worker& w) {
  DirectMailbox* box = &progress_->data()[w.slot].mailbox;
  // Only a worker that mapped its slot answers through the mailbox (and marks the calls it
  // begins, which tells a lost call from one never begun).
  if (mail_owner(*box) != w.pid) return false;
  for (std::size_t i = 0; i < nlanes_; ++i) {  // a lost worker's caller may still read it
    if (lanes_[i].box == box &&
        lanes_[i].gate.load(std::memory_order_acquire) != DirectLane::kShut) {
      return false;
    }
  }
  for (std::size_t i = 0; i < nlanes_; ++i) {
    DirectLane& l = lanes_[i];
    if (l.bound || l.gate.load(std::memory_order_acquire) != DirectLane::kShut) continue;
    const int fd = ::fcntl(w.link.fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return false;  // out of descriptors: no direct calls for now
    if (l.fd >= 0) ::close(l.fd);
    l.fd = fd;
    l.box = box;
    mail_reset(*l.box);
    l.lost = nullptr;
    l.reply.clear();
    l.calls.store(0, std::memory_order_relaxed);
    l.bound = true;
    w.lane = &l;
    return true;
  }
  return false;
}

// Ends `w`'s lane. A lent call still waiting gets `verdict(id)`'s error (null: it never began,
// and its caller queues it instead), decided only once the mailbox shows the call posted: the
// caller writes the call's id before it posts, so the id read then is that call's. A lane lent
// but not yet posted to is settled too: the caller's post fails and it queues the call.
// Returns whether a posted call was failed.
template <class Verdict>
bool Coordinator::Impl::drop_lane(Worker& w, Verdict&& verdict) {
  DirectLane* l = std::exchange(w.lane, nullptr);
  if (!l) return false;
  w.direct_done += l->calls.load(std::memory_order_relaxed);
  l->bound = false;
  // Unbound first: from now on nobody can claim it, so a lent call settled below is the last.
  if (lane_unbind(*l)) {
    ::close(std::exchange(l->fd, -1));
    return false;
  }
  bool failed = false;
  auto word = mail_word(*l->box);
  std::uint32_t seen = word.load(std::memory_order_acquire);
  while (seen == kMailIdle || mail_pending(seen)) {
    std::exception_ptr e;
    if (mail_pending(seen)) {
      try {
        e = verdict(l->task_id.load(std::memory_order_acquire));
      } catch (...) {  // no memory for the message: the call fails with that instead of hanging
        e = std::current_exception();
      }
    }
    const bool fails = e != nullptr;
    l->lost = std::move(e);  // the caller's once the word says kMailLost: not read again here
    if (word.compare_exchange_weak(seen, kMailLost, std::memory_order_acq_rel,
                                   std::memory_order_acquire)) {
      if (seen == kMailPostedAsleep) futex_wake(&l->box->word, 1, FutexScope::kShared);
      failed = fails;
      break;
    }
  }
  return failed;
}

void Coordinator::Impl::drop_all_lanes(const std::exception_ptr& e) {
  for (auto& w : workers_) {
    if (w->lane && drop_lane(*w, [&](std::uint64_t) { return e; })) {
      counts_.failed_by(TaskFailure::kAborted);
    }
  }
}

// A dead worker's lent call: lost if it began (it may have run: never run twice), queued anew
// if it never did.
void Coordinator::Impl::settle_lent_call(Worker& w) {
  if (!w.lane) return;
  DirectMailbox& box = *w.lane->box;
  const bool failed = drop_lane(w, [&](std::uint64_t id) -> std::exception_ptr {
    if (id == 0 || mail_started(box) != id) return nullptr;
    const DeadWorker who{w.name, w.pid, w.status};
    std::string msg = lost_message(who, Culprit{id, 1});
    get_logger()->warn("{}", msg);
    return std::make_exception_ptr(
        WorkerLostError(std::move(msg), w.pid, exit_code(w.status), exit_signal(w.status)));
  });
  if (failed) counts_.failed_by(TaskFailure::kWorkerLost);
}

bool Coordinator::Impl::deliver_direct_reply(Worker& w, const WorkerLink::Frame& f) {
  DirectLane* l = w.lane;
  if (!l || !lane_lent(*l) || l->task_id.load(std::memory_order_acquire) != f.header.task_id) {
    return false;
  }
  l->reply.resize(kFrameHeaderSize + f.payload.size());
  std::memcpy(l->reply.data(), &f.header, kFrameHeaderSize);
  std::memcpy(l->reply.data() + kFrameHeaderSize, f.payload.data(), f.payload.size());
  const Settled s = mail_settle(*l->box, kMailReplyElsewhere);
  if (s.wake) futex_wake(&l->box->word, 1, FutexScope::kShared);
  return true;
}

}  // namespace mproc::detail
