// mproc/worker/detail/worker_entry.hpp — how a pool's workers come to exist under each start
// method. Internal (namespace detail).
//
//   fork        the pool forks a zygote; the zygote forks workers that run the loop directly.
//   forkserver  the fork server (forked by mproc::init) forks the pool's zygote; same after.
//   spawn       the pool forks a zygote; the zygote forks a child that execs /proc/self/exe with
//               MPROC_SPAWN_WORKER in its environment (runtime/exec_bootstrap.hpp), and
//               mproc::init in that fresh program turns it into a worker. Only the worker's
//               socket, the progress memfd, the pool's log channel and the bootstrap socket
//               cross the exec (their CLOEXEC is cleared in the child, just before it).
//
// Thread safety: start_zygote may be called from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "mproc/start_method.hpp"
#include "mproc/worker/detail/worker_loop.hpp"
#include "mproc/worker/detail/zygote.hpp"

namespace mproc::detail {

// Everything a worker needs to know, as plain bytes: it crosses to the fork server in a
// datagram and to a spawned worker in its exec bootstrap message.
struct WorkerSpec {
  std::uint64_t maxtasks = 0;
  std::uint64_t max_frame_bytes = 0;
  std::uint64_t max_memory = 0;
  std::uint64_t max_address_space = 0;
  std::uint64_t shared_payload_min = 0;  // results this large go through shared memory (0: never)
  std::uint32_t nslots = 0;              // progress slots in the shared region
  std::int32_t log_level = 6;            // spdlog level of the pool's logger (6: off)
};

// Starts a pool's zygote. `progress_fd` is a memfd holding `spec.nslots` WorkerTaskCounters slots;
// `progress` is the caller's own mapping of it. `log_fd`, the write end of the pool's log
// channel (log_channel.hpp), is where the workers send their log records (-1: their stderr).
// Throws StartMethodError, std::system_error.
Zygote start_zygote(StartMethod method, const WorkerSpec& spec, int progress_fd,
                    WorkerTaskCounters* progress, int log_fd = -1);

// In a program exec'd as a pool worker by the spawn start method: runs the worker and never
// returns. Anywhere else: returns at once. mproc::init calls it.
void enter_if_spawned_worker();

// What the fork server's fresh child runs when a pool asks it for a zygote (the callback
// mproc::init gives the fork server).
void forkserver_child(std::span<const char> data, std::span<const int> fds);

// "ForkPoolWorker-", "ForkServerPoolWorker-", "SpawnPoolWorker-" (Python's names).
std::string worker_name_prefix(StartMethod method);

}  // namespace mproc::detail
