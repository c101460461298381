// mproc/worker/detail/worker_loop.hpp — what a pool worker process does until it exits.
// Internal (namespace detail).
//
// read frames -> run each -> reply, with replies to frames that arrived together coalesced into
// one write. An init frame runs the initializer; after `maxtasks` task frames (0: unlimited) the
// worker flushes its replies and exits; on EOF it exits. It always leaves with _exit, never
// returning into the code that forked it.
//
// Thread safety: runs alone in a single-threaded child.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "mproc/serialize/detail/frame.hpp"
#include "mproc/worker/detail/direct_mailbox.hpp"

namespace mproc::detail {

// Written by a worker, read by the coordinator after the worker dies: how many task frames it
// had started and finished. Replies are coalesced, so a dead worker may have finished tasks
// whose results never left it; these counters say exactly which tasks ran, so none is run
// twice and none that never started is failed. Lives in memory shared with the coordinator.
// `stop_task` goes the other way: the coordinator writes there the id of the task whose soft
// time limit passed, and mproc::this_task::stop_requested() reads it (task_stop.hpp).
// `mailbox` carries the replies to calls made to the worker directly (direct_mailbox.hpp); the
// counters do not count those calls (the coordinator's accounting of a dead worker's queue
// compares them with the results it read).
struct WorkerTaskCounters {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> finished{0};
  std::atomic<std::uint64_t> stop_task{0};
  char pad[64 - 3 * sizeof(std::atomic<std::uint64_t>)];
  DirectMailbox mailbox;
};
static_assert(offsetof(WorkerTaskCounters, mailbox) == 64, "counters on their own cache line");

class PayloadChannel;

struct WorkerConfig {
  WorkerTaskCounters* progress = nullptr;  // this worker's slot (may be null: no bookkeeping)
  PayloadChannel* payloads = nullptr;      // its shared payload buffers (null: all inline)
  std::size_t maxtasks = 0;
  std::size_t max_frame_bytes = 0;
  std::size_t max_memory = 0;         // peak RSS after which the worker retires (0: none)
  std::size_t max_address_space = 0;  // RLIMIT_AS (0: none)
};

[[noreturn]] void run_worker(int fd, const WorkerConfig& config);

// Runs one task or init frame's payload and appends the reply frame (kResultOk with the
// results, or kResultErr with the encoded exception) to `out`; replies larger than `max_frame`
// become a SerializationError. With `payloads`, a shared frame's payload is read in place and
// a large result goes out through a shared buffer (payload_channel.hpp). The task's run time
// (the reply's aux) starts at `started_ns` (CLOCK_MONOTONIC; 0: now); returns when it ended.
// Never throws. Shared by process workers and MPI ranks.
std::uint64_t run_frame(const FrameHeader& h, std::span<const char> payload, Bytes& out,
                        std::size_t max_frame, PayloadChannel* payloads = nullptr,
                        std::uint64_t started_ns = 0);

// Prepares a freshly forked worker: name, signals, descriptors, logging. Keeps only `fd`,
// `log_fd`, `shared_fd` (the pool's shared memfd) and 0-2. With a `log_fd` (a LogRelay's write end,
// log_channel.hpp) mproc's logger sends its records to the parent; without one (-1) it writes to
// stderr.
void enter_worker_process(int fd, std::string name, int log_fd = -1, int shared_fd = -1);

}  // namespace mproc::detail
