// mproc/queue.hpp — mproc::Queue<T>, SimpleQueue<T>, JoinableQueue<T>: Python's process-safe
// queues (multiprocessing.Queue and friends).
//
//   mproc::Queue<int> q;                           // q = Queue()
//   mproc::Process p(producer, q);                 // producer(mproc::Queue<int> q) { q.put(1); }
//   p.start();
//   int x = q.get(std::chrono::seconds(2));        // q.get(timeout=2): mproc::Empty on expiry
//
// How it works. Items travel as datagrams on one AF_UNIX SOCK_SEQPACKET socketpair: every
// producer, in any process, sends on one end; every consumer receives on the other. The kernel
// delivers each datagram whole to exactly one receiver, so many producers and consumers need no
// lock, and an item is never duplicated nor lost, even when a consumer is killed between items
// (an item is either still in the socket or already returned by get()). An item larger than
// 64 KiB travels in a memfd attached to its datagram (SCM_RIGHTS). A small shared
// page (a memfd, mapped by every process holding the queue) holds the approximate size, the
// slot semaphore of a bounded queue (a process-shared POSIX semaphore) and JoinableQueue's
// count of unfinished tasks (a futex word).
//
// Differences from Python:
//  * No feeder thread: put() returns once the item is in the kernel's buffer, where consumers in
//    every process can already take it. So nothing is lost when a producer exits right after
//    put(), join_thread() and cancel_join_thread() have nothing to wait for (they are no-ops,
//    kept for porting), and "join a producer before draining its queue" does not deadlock for a
//    few items. The price: an unbounded queue's put() blocks while the kernel's socket buffer is
//    full (megabytes; the queue asks for 4 MiB) until a consumer takes something. Python's
//    would grow the producer's memory instead.
//  * qsize(), empty() and full() are exact counts of items put and not yet taken, but
//    approximate as Python says: another process may change them at once.
//  * A consumer killed between its receive and its return of a bounded queue's slot costs the
//    queue that one slot of capacity.
//
// Reaching other processes: as an argument of mproc::Process (inherited under fork; its three
// descriptors are kept open across the exec under spawn). A Queue inside a Pool task, a message
// or another Queue's item is a SerializationError (pool workers keep no inherited descriptors).
//
// A Queue is a handle: copies share the same queue, and close() closes this process's
// descriptors for every copy (Python: "no more data will be put on this queue by the current
// process"); any later call here is a ClosedError.
//
// Thread safety: all members may be called concurrently from any thread, except close().
//
// Throws: Empty (get found nothing in time), Full (put found no room in time), ShutDown (after
// shutdown(): put, or get of an emptied queue), ClosedError,
// SerializationError (an item that does not encode or decode), ProcessError
// (JoinableQueue::task_done called more often than put), std::system_error.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/fd.hpp"
#include "mproc/runtime/detail/fd_transfer.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc {

namespace detail {

struct QueueShared;

// The byte-level queue. Timeouts in ns; negative: wait forever.
class QueueCore {
 public:
  QueueCore(std::size_t maxsize, bool joinable);
  QueueCore(UniqueFd get_end, UniqueFd put_end, UniqueFd shm);  // a received queue
  ~QueueCore();
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  // msg[0] is reserved for the core; the item's bytes follow. False: no room in time.
  bool put(Bytes& msg, bool block, long long timeout_ns);
  // The next item's bytes into `out`. False: nothing in time.
  bool get(Bytes& out, bool block, long long timeout_ns);
  std::int64_t qsize() const;
  std::int64_t maxsize() const;
  void task_done();
  bool join(long long timeout_ns);
  void shutdown(bool immediate);
  bool is_shutdown() const;
  void close() noexcept;
  bool closed() const noexcept { return !put_; }
  int get_fd() const { return get_.get(); }
  int put_fd() const { return put_.get(); }
  int shm_fd() const { return shm_.get(); }

 private:
  void check() const;
  void map();

  UniqueFd get_, put_, shm_;
  QueueShared* shared_ = nullptr;
};

long long queue_timeout_ns(std::chrono::nanoseconds d) noexcept;

}  // namespace detail

template <class T>
class Queue {
  static_assert(is_wire_serializable_v<T> && std::is_default_constructible_v<T>,
                "mproc::Queue<T>: T must be default constructible and serializable with cereal");

 public:
  // maxsize 0: unbounded. Throws std::system_error.
  explicit Queue(std::size_t maxsize = 0) : core_(make_core(maxsize)) {}

  void put(const T& x) { put_impl(x, true, -1); }
  void put(const T& x, bool block) { put_impl(x, block, -1); }
  template <class Rep, class Period>
  void put(const T& x, std::chrono::duration<Rep, Period> timeout) {
    put_impl(x, true, ns(timeout));
  }
  template <class Rep, class Period>
  void put(const T& x, bool block, std::chrono::duration<Rep, Period> timeout) {
    put_impl(x, block, ns(timeout));
  }
  void put_nowait(const T& x) { put_impl(x, false, 0); }

  T get() { return get_impl(true, -1); }
  T get(bool block) { return get_impl(block, -1); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_impl(true, ns(timeout));
  }
  template <class Rep, class Period>
  T get(bool block, std::chrono::duration<Rep, Period> timeout) {
    return get_impl(block, ns(timeout));
  }
  T get_nowait() { return get_impl(false, 0); }

  std::size_t qsize() const {
    return static_cast<std::size_t>(std::max<std::int64_t>(0, core().qsize()));
  }
  bool empty() const { return core().qsize() <= 0; }
  bool full() const {
    const auto m = core().maxsize();
    return m > 0 && core().qsize() >= m;
  }
  std::size_t maxsize() const { return static_cast<std::size_t>(core().maxsize()); }
  void close() noexcept {
    if (core_) core_->close();
  }
  bool closed() const noexcept { return !core_ || core_->closed(); }
  // Python 3.13's Queue.shutdown(immediate=False), for every process holding the queue: later
  // put()s throw ShutDown; get()s return what is left, then throw ShutDown (blocked ones wake).
  // immediate: what is left is dropped first (JoinableQueue: each dropped item counts as
  // task_done). Blocked put()s of a full bounded queue wake with ShutDown. Idempotent.
  void shutdown(bool immediate = false) { core().shutdown(immediate); }
  bool is_shutdown() const { return core().is_shutdown(); }

  // No feeder thread (see the header comment): nothing to wait for or cancel.
  void join_thread() noexcept {}
  void cancel_join_thread() noexcept {}

  // cereal: only as a Process argument (see the header comment).
  template <class A>
  void save(A& ar) const {
    const bool open = !closed();
    ar(detail::note_fd(open ? core_->get_fd() : -1, "Queue"),
       detail::note_fd(open ? core_->put_fd() : -1, "Queue"),
       detail::note_fd(open ? core_->shm_fd() : -1, "Queue"));
  }
  template <class A>
  void load(A& ar) {
    int g = -1, p = -1, s = -1;
    ar(g, p, s);
    detail::UniqueFd gf(detail::take_fd(g)), pf(detail::take_fd(p)), sf(detail::take_fd(s));
    core_ = std::make_shared<detail::QueueCore>(std::move(gf), std::move(pf), std::move(sf));
  }

 protected:
  struct Joinable {};
  Queue(std::size_t maxsize, Joinable)
      : core_(std::make_shared<detail::QueueCore>(maxsize, true)) {}

  detail::QueueCore& core() const {
    if (!core_) throw ClosedError("queue is closed");
    return *core_;
  }

 private:
  static std::shared_ptr<detail::QueueCore> make_core(std::size_t maxsize) {
    return std::make_shared<detail::QueueCore>(maxsize, false);
  }
  template <class Rep, class Period>
  static long long ns(std::chrono::duration<Rep, Period> d) {
    return detail::queue_timeout_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  }

  void put_impl(const T& x, bool block, long long timeout_ns) {
    detail::Bytes msg;
    msg.reserve(64);
    msg.push_back(0);  // the core's tag byte
    detail::WireOutputArchive ar(msg);
    ar(x);
    if (!core().put(msg, block, timeout_ns)) throw Full("queue is full");
  }

  T get_impl(bool block, long long timeout_ns) {
    detail::Bytes buf;
    if (!core().get(buf, block, timeout_ns)) throw Empty("queue is empty");
    return detail::decode_exactly<T>(buf, "queue item");
  }

  std::shared_ptr<detail::QueueCore> core_;
};

// Python's SimpleQueue: put, get, empty, close (unbounded; get blocks).
template <class T>
class SimpleQueue {
 public:
  SimpleQueue() = default;
  void put(const T& x) { q_.put(x); }
  T get() { return q_.get(); }
  bool empty() const { return q_.empty(); }
  void close() noexcept { q_.close(); }
  bool closed() const noexcept { return q_.closed(); }

  template <class A>
  void serialize(A& ar) {
    ar(q_);
  }

 private:
  Queue<T> q_;
};

// Python's JoinableQueue: every put() adds an unfinished task, task_done() ends one, join()
// waits until none is left (across every process holding the queue).
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  explicit JoinableQueue(std::size_t maxsize = 0)
      : Queue<T>(maxsize, typename Queue<T>::Joinable{}) {}
  // ProcessError when called more often than items were put.
  void task_done() { this->core().task_done(); }
  void join() { this->core().join(-1); }
  // Returns whether every task was done in time.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return this->core().join(
        detail::queue_timeout_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)));
  }
};

}  // namespace mproc
