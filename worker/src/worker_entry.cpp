#include "mproc/worker/detail/worker_entry.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/process.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/exec_bootstrap.hpp"
#include "mproc/runtime/detail/forkserver.hpp"
#include "mproc/runtime/detail/shm_named.hpp"
#include "mproc/serialize/detail/callable.hpp"
#include "mproc/worker/detail/payload_channel.hpp"

namespace mproc::detail {
namespace {

constexpr const char* kSpawnEnv = "MPROC_SPAWN_WORKER";

// What a spawned worker is told across the exec (exec_bootstrap.hpp).
struct SpawnedWorker {
  std::int32_t fd = -1;
  std::int32_t progress_fd = -1;
  std::int32_t log_fd = -1;  // the pool's log channel (log_channel.hpp)
  std::uint32_t slot = 0;
  std::uint32_t serial = 0;
  std::int32_t zygote = 0;  // the parent it must die with
  WorkerSpec spec;

  template <class A>
  void serialize(A& ar) {
    ar(fd, progress_fd, log_fd, slot, serial, zygote, spec.maxtasks, spec.max_frame_bytes,
       spec.max_memory, spec.max_address_space, spec.shared_payload_min, spec.nslots,
       spec.log_level);
  }
};

WorkerTaskCounters* map_progress(int fd, std::uint32_t nslots) {
  void* p = ::mmap(nullptr, nslots * sizeof(WorkerTaskCounters), PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap progress");
  return static_cast<WorkerTaskCounters*>(p);
}

// `shared_fd`: the pool's shared memfd (progress slots, then payload areas), kept open so the
// worker can grow its payload buffers' mappings; -1 when the worker runs without it.
[[noreturn]] void run_pool_worker(int fd, int log_fd, int shared_fd, unsigned serial, unsigned slot,
                                  WorkerTaskCounters* base, const WorkerSpec& spec,
                                  StartMethod method) {
  enter_worker_process(fd, worker_name_prefix(method) + std::to_string(serial), log_fd, shared_fd);
  get_logger()->set_level(static_cast<spdlog::level::level_enum>(spec.log_level));
  const bool has_slot = base != nullptr && slot < spec.nslots;
  WorkerConfig c;
  c.progress = has_slot ? &base[slot] : nullptr;
  c.maxtasks = spec.maxtasks;
  c.max_frame_bytes = spec.max_frame_bytes;
  c.max_memory = spec.max_memory;
  c.max_address_space = spec.max_address_space;
  // Lives as long as the worker: run_worker never returns.
  std::optional<PayloadChannel> payloads;
  if (has_slot && shared_fd >= 0) {
    const std::size_t bytes = payload_buffer_bytes(spec.max_frame_bytes);
    try {
      payloads.emplace(shared_fd, payload_area_offset(spec.nslots, slot, bytes), bytes,
                       PayloadChannel::Side::kWorker, spec.shared_payload_min);
      c.payloads = &*payloads;
    } catch (const std::exception& e) {
      // A shared task then fails with a SerializationError; inline ones run as ever.
      get_logger()->warn("no shared payload buffers: {}", e.what());
    }
  }
  run_worker(fd, c);
}

// In the zygote's fresh child: become a new program that init() turns into a worker. The child
// is single-threaded: it may allocate, and its message waits in the socket across the exec.
[[noreturn]] void exec_spawned_worker(int fd, unsigned serial, unsigned slot, int progress_fd,
                                      int log_fd, const WorkerSpec& spec) {
  try {
    ExecBootstrap boot(kSpawnEnv, "mproc-spawn-worker");
    boot.send(SpawnedWorker{fd, progress_fd, log_fd, slot, serial, ::getppid(), spec});
    std::array<int, 3> inherit{fd, -1, -1};
    std::size_t n = 1;
    for (int extra : {progress_fd, log_fd}) {
      if (extra >= 0) inherit[n++] = extra;
    }
    boot.exec(std::span<const int>(inherit.data(), n));
    std::fprintf(stderr, "mproc: cannot exec /proc/self/exe for a spawn worker: %s\n",
                 std::strerror(errno));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: cannot start a spawn worker: %s\n", e.what());
  }
  ::_exit(127);
}

}  // namespace

// In the fork server's fresh child: become the zygote of the pool that asked.
void forkserver_child(std::span<const char> data, std::span<const int> fds) {
  WorkerSpec spec;
  if (data.size() != sizeof spec || fds.size() < 2 || fds.size() > 3) ::_exit(2);
  const int log_fd = fds.size() == 3 ? fds[2] : -1;
  std::memcpy(&spec, data.data(), sizeof spec);
  WorkerTaskCounters* base = nullptr;
  try {
    base = map_progress(fds[1], spec.nslots);
  } catch (...) {
    ::_exit(2);
  }
  const int shared_fd = fds[1];  // kept: workers map their payload buffers from it
  warm_callable_tables();
  const Zygote::WorkerMain main = [spec, base, log_fd, shared_fd](int fd, unsigned serial,
                                                                  unsigned slot) {
    run_pool_worker(fd, log_fd, shared_fd, serial, slot, base, spec, StartMethod::kForkserver);
  };
  const std::array<int, 2> keep{log_fd, shared_fd};
  run_zygote(fds[0], ::getppid(), main, keep);
}

// In a program exec'd by the spawn start method: run the worker and never return.
void enter_if_spawned_worker() {
  const std::optional<SpawnedWorker> w = read_exec_bootstrap<SpawnedWorker>(kSpawnEnv, 4096);
  if (!w) return;
  if (w->fd < 0) exec_bootstrap_corrupt(kSpawnEnv, "no worker socket");
  die_with_parent(w->zygote);  // the zygote may have died while we were exec'ing
  set_cloexec(w->fd, true);
  if (w->log_fd >= 0) set_cloexec(w->log_fd, true);
  WorkerTaskCounters* base = nullptr;
  if (w->progress_fd >= 0) {
    set_cloexec(w->progress_fd, true);
    try {
      base = map_progress(w->progress_fd, w->spec.nslots);
    } catch (...) {
      base = nullptr;
    }
  }
  run_pool_worker(w->fd, w->log_fd, w->progress_fd, w->serial, w->slot, base, w->spec,
                  StartMethod::kSpawn);
}

std::string worker_name_prefix(StartMethod method) {
  switch (method) {
    case StartMethod::kForkserver:
      return "ForkServerPoolWorker-";
    case StartMethod::kSpawn:
      return "SpawnPoolWorker-";
    case StartMethod::kFork:
      break;
  }
  return "ForkPoolWorker-";
}

Zygote start_zygote(StartMethod method, const WorkerSpec& spec, int progress_fd,
                    WorkerTaskCounters* progress, int log_fd) {
  require_start_method(method);
  switch (method) {
    case StartMethod::kFork: {
      warm_callable_tables();  // before the zygote forks: it and every worker inherit it
      const std::array<int, 2> keep{log_fd, progress_fd};
      return Zygote(
          [spec, progress, log_fd, progress_fd](int fd, unsigned serial, unsigned slot) {
            run_pool_worker(fd, log_fd, progress_fd, serial, slot, progress, spec,
                            StartMethod::kFork);
          },
          keep);
    }
    case StartMethod::kSpawn: {
      const std::array<int, 2> keep{progress_fd, log_fd};
      return Zygote(
          [spec, progress_fd, log_fd](int fd, unsigned serial, unsigned slot) {
            exec_spawned_worker(fd, serial, slot, progress_fd, log_fd, spec);
          },
          keep);
    }
    case StartMethod::kForkserver: {
      for (int attempt = 0;; ++attempt) {
        auto [mine, theirs] = make_socketpair(SOCK_SEQPACKET);
        const std::array<int, 3> all{theirs.get(), progress_fd, log_fd};
        const std::span<const int> fds(all.data(), log_fd >= 0 ? 3 : 2);
        try {
          const pid_t pid =
              forkserver_fork({reinterpret_cast<const char*>(&spec), sizeof spec}, fds);
          return Zygote(std::move(mine), pid);
        } catch (const ForkServerLost& e) {
          if (attempt > 0) {
            throw StartMethodError(std::string(e.what()) +
                                   ", twice in a row; use the spawn start method if something "
                                   "keeps killing the fork server");
          }
          get_logger()->warn("{}; asking a new fork server", e.what());
        }
      }
    }
  }
  throw StartMethodError("unknown start method");
}

}  // namespace mproc::detail
