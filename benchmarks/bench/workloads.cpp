// The workloads: mproc and its baselines on the same tasks.
//
// Every measurement builds its own pool, warms it up (workers forked and running, the
// dispatcher's timing of tasks learned), and times only the workload itself. Python does the
// same inside mp_bench.py, so interpreter and pool start-up are never counted for either side.
#include "workloads.hpp"

#include <sys/mman.h>

#include <mproc/mproc.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <deque>
#include <memory>
#include <new>
#include <numeric>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "floor.hpp"
#include "manager_workloads.hpp"
#include "shm_workloads.hpp"
#include "std_thread_pool.hpp"
#include "workload_support.hpp"

// ---- the tasks (plain functions: mproc names them by module and offset) ------------------------

int bench_trivial(int x) {
  return x + 1;
}

// ~`iters` rounds of dependent floating-point work; calibrated to ~100 us per call below.
double bench_cpu_work(int iters) {
  double acc = iters;
  for (int i = 1; i < iters; ++i) acc = std::sin(acc) + std::sqrt(acc * acc + i);
  return acc;
}

std::vector<char> bench_echo(std::vector<char> payload) {
  return payload;
}

namespace {
std::atomic<std::int64_t>* g_death_ns = nullptr;  // in a MAP_SHARED page (prepare_shared_memory)

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

// Records the moment of death in shared memory, then dies as a crash would.
int bench_die(int) {
  g_death_ns->store(monotonic_ns());
  std::raise(SIGKILL);
  return 0;
}

// When the worker started this task (CLOCK_MONOTONIC is one clock for all processes).
std::int64_t bench_started_at(int) {
  return monotonic_ns();
}

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using Result = std::optional<double>;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Keeps a result alive so the optimiser cannot drop the work that produced it.
template <class T>
void keep(const T& v) {
  asm volatile("" : : "g"(&v) : "memory");
}

Result fail(std::string& error, std::string what) {
  error = std::move(what);
  return std::nullopt;
}

std::atomic<bool> g_abandoned{false};

// A pool that missed its deadline may be wedged (its destructor would wait forever): it is
// leaked, noted, and the program leaves with _Exit at the end (see pools_abandoned()).
Result abandon(std::unique_ptr<mproc::Pool> pool, std::chrono::seconds limit, std::string& error) {
  [[maybe_unused]] auto* leaked = pool.release();
  g_abandoned = true;
  return fail(error, "no result within " + std::to_string(limit.count()) +
                         " s: the pool looks wedged and was abandoned (not destroyed); this "
                         "engine is skipped in later repetitions");
}

// Forks the workers, runs a little of everything so the timed part sees a steady state.
template <class P>
void warm_up(P& pool) {
  std::vector<int> in(1000);
  std::iota(in.begin(), in.end(), 0);
  keep(pool.map(bench_trivial, in));
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 200; ++i) rs.push_back(pool.apply_async(bench_trivial, i));
  for (auto& r : rs) keep(r.get());
  for (int i = 0; i < 20; ++i) keep(pool.apply(bench_trivial, i));
}

// ---- apply: sequential round trips (us per call) ----------------------------------------------

template <class P>
Result pool_apply_us(std::size_t n, std::size_t workers, std::string& error) {
  P pool(workers);
  warm_up(pool);
  long sum = 0;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) sum += pool.apply(bench_trivial, static_cast<int>(i));
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(n * (n + 1) / 2)) return fail(error, "wrong results");
  return s * 1e6 / static_cast<double>(n);
}

Result std_pool_apply_us(std::size_t n, std::size_t workers, std::string& error) {
  StdThreadPool pool(workers);
  for (int i = 0; i < 100; ++i) keep(pool.submit(bench_trivial, i).get());
  long sum = 0;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) sum += pool.submit(bench_trivial, static_cast<int>(i)).get();
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(n * (n + 1) / 2)) return fail(error, "wrong results");
  return s * 1e6 / static_cast<double>(n);
}

// ---- apply_async: n submissions, then every get (tasks/s) --------------------------------------

// kAsCompleted: the same submissions, collected in the order they finish
// (concurrent.futures.as_completed) instead of get() in submission order — what the completion
// registration costs per result.
template <class P, bool kAsCompleted = false>
Result pool_apply_async_rate(std::size_t n, std::size_t workers, std::string& error) {
  P pool(workers);
  warm_up(pool);
  std::vector<mproc::AsyncResult<int>> rs;
  rs.reserve(n);
  long sum = 0;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i)
    rs.push_back(pool.apply_async(bench_trivial, static_cast<int>(i)));
  if constexpr (kAsCompleted) {
    for (auto& r : mproc::as_completed(rs)) sum += r.get();
  } else {
    for (auto& r : rs) sum += r.get();
  }
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(n * (n + 1) / 2)) return fail(error, "wrong results");
  return static_cast<double>(n) / s;
}

Result std_pool_apply_async_rate(std::size_t n, std::size_t workers, std::string& error) {
  StdThreadPool pool(workers);
  for (int i = 0; i < 100; ++i) keep(pool.submit(bench_trivial, i).get());
  std::vector<std::future<int>> fs;
  fs.reserve(n);
  long sum = 0;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) fs.push_back(pool.submit(bench_trivial, static_cast<int>(i)));
  for (auto& f : fs) sum += f.get();
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(n * (n + 1) / 2)) return fail(error, "wrong results");
  return static_cast<double>(n) / s;
}

// ---- map, default chunksize (items/s) ----------------------------------------------------------

template <class P>
Result pool_map_rate(std::size_t n, std::size_t workers, std::string& error) {
  P pool(workers);
  warm_up(pool);
  std::vector<int> in(n);
  std::iota(in.begin(), in.end(), 0);
  const auto t0 = Clock::now();
  const std::vector<int> out = pool.map(bench_trivial, in);
  const double s = seconds_since(t0);
  if (out.size() != n || out.back() != static_cast<int>(n)) return fail(error, "wrong results");
  return static_cast<double>(n) / s;
}

// ---- imap, chunksize 1 (items/s) ---------------------------------------------------------------

template <class P>
Result pool_imap_rate(std::size_t n, std::size_t workers, std::string& error) {
  P pool(workers);
  warm_up(pool);
  long sum = 0;
  const auto t0 = Clock::now();
  for (int y : pool.imap(bench_trivial, std::views::iota(0, static_cast<int>(n)), 1)) sum += y;
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(n * (n + 1) / 2)) return fail(error, "wrong results");
  return static_cast<double>(n) / s;
}

// ---- CPU-bound map (tasks/s; the ratio to serial is the speed-up) -----------------------------

Result serial_cpu_rate(std::size_t n, int iters, std::string&) {
  double acc = 0;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) acc += bench_cpu_work(iters);
  const double s = seconds_since(t0);
  keep(acc);
  return static_cast<double>(n) / s;
}

template <class P>
Result pool_cpu_rate(std::size_t n, int iters, std::size_t workers, std::string& error) {
  P pool(workers);
  warm_up(pool);
  const std::vector<int> in(n, iters);
  const auto t0 = Clock::now();
  const std::vector<double> out = pool.map(bench_cpu_work, in);
  const double s = seconds_since(t0);
  if (out.size() != n || out.back() != bench_cpu_work(iters)) return fail(error, "wrong results");
  return static_cast<double>(n) / s;
}

// Iterations of bench_cpu_work that take about `target_us` here (best of a few tries).
int calibrate_cpu_work(double target_us) {
  constexpr int kProbe = 20'000;
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    keep(bench_cpu_work(kProbe));
    best = std::min(best, seconds_since(t0));
  }
  return std::max(100, static_cast<int>(kProbe * target_us * 1e-6 / best));
}

// ---- 1 MB payloads echoed (GB/s, each payload counted once) ------------------------------------

constexpr std::size_t kPayloadBytes = std::size_t{1} << 20;

// `in_flight` 1: sequential apply, as the socketpair floor. More: a window of apply_async.
// `shared`: through the workers' shared payload buffers (the default), or all through their
// sockets (PoolOptions::shared_payload_min = 0), to show what the shared path buys.
Result pool_echo_gbps(std::size_t n, std::size_t workers, std::size_t in_flight, bool shared,
                      std::string& error) {
  mproc::PoolOptions o;
  o.processes = workers;
  if (!shared) o.shared_payload_min = 0;
  mproc::Pool pool(o);
  warm_up(pool);
  const std::vector<char> payload(kPayloadBytes, 'p');
  for (int i = 0; i < 3; ++i) keep(pool.apply(bench_echo, payload));
  std::size_t bytes = 0;
  const auto t0 = Clock::now();
  if (in_flight <= 1) {
    for (std::size_t i = 0; i < n; ++i) bytes += pool.apply(bench_echo, payload).size();
  } else {
    std::deque<mproc::AsyncResult<std::vector<char>>> window;
    for (std::size_t i = 0; i < n; ++i) {
      if (window.size() == in_flight) {
        bytes += window.front().get().size();
        window.pop_front();
      }
      window.push_back(pool.apply_async(bench_echo, payload));
    }
    for (auto& r : window) bytes += r.get().size();
  }
  const double s = seconds_since(t0);
  if (bytes != n * kPayloadBytes) return fail(error, "wrong results");
  return static_cast<double>(bytes) / s / 1e9;
}

// ---- maxtasksperchild=1: every task on a fresh worker (tasks/s) --------------------------------

Result maxtasks_rate(std::size_t n, std::size_t workers, std::size_t window,
                     std::chrono::seconds limit, std::string& error) {
  mproc::PoolOptions o;
  o.processes = workers;
  o.maxtasksperchild = 1;
  auto pool = std::make_unique<mproc::Pool>(o);
  for (std::size_t i = 0; i < 4 * workers; ++i) keep(pool->apply(bench_trivial, 0));
  std::deque<mproc::AsyncResult<int>> rs;
  long sum = 0;
  const auto t0 = Clock::now();
  const auto deadline = t0 + limit;
  auto take = [&] {
    if (!rs.front().wait(deadline - Clock::now())) return false;
    sum += rs.front().get();
    rs.pop_front();
    return true;
  };
  bool ok = true;
  for (std::size_t i = 0; ok && i < n; ++i) {
    if (window != 0 && rs.size() == window) ok = take();
    rs.push_back(pool->apply_async(bench_trivial, static_cast<int>(i)));
  }
  while (ok && !rs.empty()) ok = take();
  const double s = seconds_since(t0);
  if (!ok) return abandon(std::move(pool), limit, error);
  if (sum != static_cast<long>(n * (n + 1) / 2)) return fail(error, "wrong results");
  return static_cast<double>(n) / s;
}

// ---- worker death -> replacement running a task (median us over `deaths`) ---------------------
//
// Method: a one-worker pool gets two tasks back to back: bench_die, which stores the
// CLOCK_MONOTONIC time in a shared page and SIGKILLs its own worker, and bench_started_at, which
// returns the time at which it began to run. The second task is queued behind the first on the
// only worker, so it is re-queued when that worker dies and is necessarily the first task the
// replacement runs. started_at - death is therefore exactly "worker dies -> a new worker is
// running a task": death detection, the zygote's fork, the new worker's start-up and the
// re-dispatch, with no round-trip estimate subtracted and no polling granularity. Both stamps are
// taken from the same system-wide clock in two processes.
Result respawn_latency_us(std::size_t deaths, std::chrono::seconds limit, std::string& error) {
  if (g_death_ns == nullptr) return fail(error, "prepare_shared_memory() was not called");
  mproc::PoolOptions o;
  o.processes = 1;
  auto pool = std::make_unique<mproc::Pool>(o);
  warm_up(*pool);
  std::vector<double> us;
  for (std::size_t i = 0; i < deaths; ++i) {
    g_death_ns->store(0);
    auto killer = pool->apply_async(bench_die, 0);
    auto stamp = pool->apply_async(bench_started_at, 0);
    if (!stamp.wait(limit)) return abandon(std::move(pool), limit, error);
    try {
      killer.get();
      return fail(error, "the killer task returned");
    } catch (const mproc::WorkerLostError&) {
    }
    const std::int64_t started = stamp.get();
    const std::int64_t died = g_death_ns->load();
    if (died == 0 || started < died) return fail(error, "inconsistent stamps");
    us.push_back(static_cast<double>(started - died) / 1e3);
  }
  return median_of(us);
}

// ---- Pool(k) creation to its first result, per start method (median ms) ----------------------

Result startup_ms(mproc::StartMethod method, std::size_t n, std::size_t workers) {
  std::vector<double> ms;
  for (std::size_t i = 0; i < n; ++i) {
    mproc::PoolOptions o;
    o.processes = workers;
    o.start_method = method;
    const auto t0 = Clock::now();
    mproc::Pool pool(o);
    keep(pool.apply(bench_trivial, 1));
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    pool.terminate();
  }
  return median_of(ms);
}

// ---- assembling the workloads ------------------------------------------------------------------

// One sample of `workload` on MPI ranks: this executable under mpirun (run_mpi_row).
void add_mpi(Workload& w, const Config& cfg, const std::string& workload, const std::string& unit,
             std::size_t n) {
  if (!cfg.mpirun) return;
  std::ostringstream c;
  // Root may run mpirun only with both ALLOW variables; one host: shared memory and loopback.
  c << "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader "
       "OMPI_MCA_oob_tcp_if_include=lo "
    << shell_quote(*cfg.mpirun) << " --oversubscribe -n " << cfg.workers + 1 << ' '
    << shell_quote(cfg.self_exe) << " --mpi-row " << workload << " --n " << n << " --workers "
    << cfg.workers << " 2>&1";
  w.engines.push_back(engine("mproc-mpi", unit, n, [cmd = c.str()](std::string& e) {
    return run_for_value(cmd, "mpirun", e);
  }));
}

}  // namespace

const std::vector<std::string>& workload_names() {
  static const std::vector<std::string> names = append_shm_workload_names(
      append_manager_workload_names({"apply", "apply_async", "map", "imap", "cpu", "payload",
                                     "maxtasks", "respawn", "startup"}));
  return names;
}

bool pools_abandoned() {
  return g_abandoned.load();
}

void prepare_shared_memory() {
  if (g_death_ns != nullptr) return;
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  g_death_ns = new (p) std::atomic<std::int64_t>(0);
}

std::vector<Workload> make_workloads(const Config& cfg, const std::vector<std::string>& only,
                                     std::vector<std::string>& notes) {
  const bool q = cfg.quick;
  const std::size_t k = cfg.workers;
  const std::chrono::seconds limit(q ? 20 : 60);  // per measurement, where a pool could wedge
  auto pick = [q](Sizes full, Sizes quick) { return q ? quick : full; };
  auto wanted = [&](const std::string& name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };
  std::vector<Workload> out;

  if (wanted("apply")) {
    const Sizes n = pick({2000, 2000}, {1000, 300});
    Workload w{"apply", "sequential apply of a trivial function", {}, {}};
    const std::string u = "us/call";
    w.engines.push_back(engine("mproc", u, n.cpp, [n, k](std::string& e) {
      return pool_apply_us<mproc::Pool>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("mproc-threads", u, n.cpp, [n, k](std::string& e) {
      return pool_apply_us<mproc::ThreadPool>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("std-threadpool", u, n.cpp,
                               [n, k](std::string& e) { return std_pool_apply_us(n.cpp, k, e); }));
    w.engines.push_back(engine("socketpair", "us/round-trip", n.cpp,
                               [n](std::string&) -> Result { return socketpair_rtt_us(n.cpp); }));
    add_python(w, cfg, "python", "apply", u, n.python);
    add_mpi(w, cfg, "apply", u, n.cpp);
    w.ratios = {
        ratio("apply", "mproc / socketpair RTT", "mproc", "socketpair", 1.3, true),
        ratio("apply", "python / mproc (x faster)", "python", "mproc", 50.0),
        ratio("apply", "mproc / std-threadpool", "mproc", "std-threadpool", 0.5, true),
        ratio("apply", "mproc-mpi / mproc", "mproc-mpi", "mproc", std::nullopt, true),
    };
    out.push_back(std::move(w));
  }

  if (wanted("apply_async")) {
    const Sizes n = pick({100'000, 100'000}, {20'000, 5'000});
    Workload w{"apply_async", "apply_async of a trivial function, then get all", {}, {}};
    const std::string u = "tasks/s";
    w.engines.push_back(engine("mproc", u, n.cpp, [n, k](std::string& e) {
      return pool_apply_async_rate<mproc::Pool>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("mproc-threads", u, n.cpp, [n, k](std::string& e) {
      return pool_apply_async_rate<mproc::ThreadPool>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("mproc-as-completed", u, n.cpp, [n, k](std::string& e) {
      return pool_apply_async_rate<mproc::Pool, true>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("std-threadpool", u, n.cpp, [n, k](std::string& e) {
      return std_pool_apply_async_rate(n.cpp, k, e);
    }));
    w.engines.push_back(engine("socketpair-stream", "msgs/s", n.cpp, [n](std::string&) -> Result {
      return socketpair_stream_msgs_per_s(n.cpp);
    }));
    add_python(w, cfg, "python", "apply_async", u, n.python);
    w.ratios = {
        ratio("apply_async", "mproc / std-threadpool", "mproc", "std-threadpool", 1.5),
        ratio("apply_async", "mproc / python", "mproc", "python", 60.0),
        ratio("apply_async", "mproc / socketpair stream", "mproc", "socketpair-stream"),
        ratio("apply_async", "mproc-threads / std-threadpool", "mproc-threads", "std-threadpool"),
        ratio("apply_async", "mproc-as-completed / mproc (as_completed vs get)",
              "mproc-as-completed", "mproc", 0.9),
    };
    out.push_back(std::move(w));
  }

  if (wanted("map")) {
    const Sizes n = pick({1'000'000, 1'000'000}, {1'000'000, 500'000});
    Workload w{"map", "map of ints, default chunksize", {}, {}};
    const std::string u = "items/s";
    w.engines.push_back(engine("mproc", u, n.cpp, [n, k](std::string& e) {
      return pool_map_rate<mproc::Pool>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("mproc-threads", u, n.cpp, [n, k](std::string& e) {
      return pool_map_rate<mproc::ThreadPool>(n.cpp, k, e);
    }));
    add_python(w, cfg, "python", "map", u, n.python);
    add_mpi(w, cfg, "map", u, n.cpp);
    w.ratios = {ratio("map", "mproc / python", "mproc", "python", 15.0),
                ratio("map", "mproc-mpi / mproc", "mproc-mpi", "mproc")};
    out.push_back(std::move(w));
  }

  if (wanted("imap")) {
    const Sizes n = pick({100'000, 100'000}, {20'000, 5'000});
    Workload w{"imap", "imap, chunksize 1", {}, {}};
    const std::string u = "items/s";
    w.engines.push_back(engine("mproc", u, n.cpp, [n, k](std::string& e) {
      return pool_imap_rate<mproc::Pool>(n.cpp, k, e);
    }));
    w.engines.push_back(engine("mproc-threads", u, n.cpp, [n, k](std::string& e) {
      return pool_imap_rate<mproc::ThreadPool>(n.cpp, k, e);
    }));
    add_python(w, cfg, "python", "imap", u, n.python);
    w.ratios = {ratio("imap", "mproc / python", "mproc", "python", 20.0)};
    out.push_back(std::move(w));
  }

  if (wanted("cpu")) {
    const Sizes n = pick({4000, 4000}, {1000, 1000});
    const int iters = calibrate_cpu_work(100.0);
    notes.push_back("cpu: " + std::to_string(iters) +
                    " iterations of bench_cpu_work ~ 100 us per task (calibrated at start)");
    Workload w{"cpu", "map of ~100 us CPU-bound tasks", {}, {}};
    const std::string u = "tasks/s";
    w.engines.push_back(engine("serial", u, n.cpp, [n, iters](std::string& e) {
      return serial_cpu_rate(n.cpp, iters, e);
    }));
    w.engines.push_back(engine("mproc", u, n.cpp, [n, iters, k](std::string& e) {
      return pool_cpu_rate<mproc::Pool>(n.cpp, iters, k, e);
    }));
    w.engines.push_back(engine("mproc-threads", u, n.cpp, [n, iters, k](std::string& e) {
      return pool_cpu_rate<mproc::ThreadPool>(n.cpp, iters, k, e);
    }));
    add_python(w, cfg, "python-serial", "cpu_serial", u, n.python);
    add_python(w, cfg, "python", "cpu", u, n.python);
    w.ratios = {
        ratio("cpu", "mproc / serial (speed-up)", "mproc", "serial", 1.9),
        ratio("cpu", "mproc-threads / serial", "mproc-threads", "serial"),
        ratio("cpu", "python / python-serial", "python", "python-serial"),
    };
    out.push_back(std::move(w));
  }

  if (wanted("payload")) {
    const Sizes n = pick({1000, 300}, {200, 100});
    Workload w{"payload", "1 MiB std::vector<char> echoed (shared-memory payloads)", {}, {}};
    const std::string u = "GB/s";
    w.engines.push_back(engine("mproc", u, n.cpp, [n, k](std::string& e) {
      return pool_echo_gbps(n.cpp, k, 1, true, e);
    }));
    w.engines.push_back(engine("mproc-pipelined", u, n.cpp, [n, k](std::string& e) {
      return pool_echo_gbps(n.cpp, k, 2 * k, true, e);
    }));
    w.engines.push_back(engine("mproc-socket", u, n.cpp, [n, k](std::string& e) {
      return pool_echo_gbps(n.cpp, k, 1, false, e);
    }));
    w.engines.push_back(engine("socketpair", u, n.cpp, [n](std::string&) -> Result {
      return socketpair_echo_gb_per_s(n.cpp, kPayloadBytes);
    }));
    add_python(w, cfg, "python", "payload", u, n.python);
    w.ratios = {
        ratio("payload", "mproc / socketpair", "mproc", "socketpair", 1.5),
        ratio("payload", "mproc-pipelined / socketpair", "mproc-pipelined", "socketpair"),
        ratio("payload", "mproc / mproc-socket", "mproc", "mproc-socket"),
        ratio("payload", "mproc / python", "mproc", "python"),
    };
    out.push_back(std::move(w));
  }

  if (wanted("maxtasks")) {
    const Sizes n = pick({10'000, 1'000}, {2'000, 150});
    Workload w{"maxtasks", "maxtasksperchild=1, trivial tasks", {}, {}};
    const std::string u = "tasks/s";
    // All n submitted at once, as Python does; and, for comparison, at most 2 per worker
    // outstanding (the caller waits for the oldest before submitting more).
    w.engines.push_back(engine("mproc", u, n.cpp, [n, k, limit](std::string& e) {
      return maxtasks_rate(n.cpp, k, 0, limit, e);
    }));
    // (a fifth of the tasks: a rate, and worker churn is slow)
    const std::size_t nw = n.cpp / 5;
    w.engines.push_back(engine("mproc-windowed", u, nw, [nw, k, limit](std::string& e) {
      return maxtasks_rate(nw, k, 2 * k, limit, e);
    }));
    add_python(w, cfg, "python", "maxtasks", u, n.python);
    w.ratios = {ratio("maxtasks", "mproc / python", "mproc", "python", 10.0),
                ratio("maxtasks", "mproc-windowed / python", "mproc-windowed", "python")};
    out.push_back(std::move(w));
  }

  if (wanted("startup")) {
    const Sizes n = pick({20, 10}, {10, 5});
    Workload w{"startup", "Pool(k) creation to first result, per start method", {}, {}};
    for (mproc::StartMethod m :
         {mproc::StartMethod::kFork, mproc::StartMethod::kForkserver, mproc::StartMethod::kSpawn}) {
      const std::string name(mproc::to_string(m));
      w.engines.push_back(engine("mproc-" + name, "ms", n.cpp,
                                 [n, k, m](std::string&) { return startup_ms(m, n.cpp, k); }));
      add_python(w, cfg, "python-" + name, "startup_" + name, "ms", n.python);
      w.ratios.push_back(ratio("startup", "python-" + name + " / mproc-" + name + " (x faster)",
                               "python-" + name, "mproc-" + name));
    }
    notes.push_back("startup goals (absolute): fork <= 1 ms, forkserver <= 2 ms, spawn <= 5 ms");
    out.push_back(std::move(w));
  }

  if (wanted("respawn")) {
    const Sizes n = pick({30, 0}, {10, 0});
    Workload w{"respawn", "worker killed -> replacement running a task (1-worker pool)", {}, {}};
    w.engines.push_back(engine("mproc", "us", n.cpp, [n, limit](std::string& e) {
      return respawn_latency_us(n.cpp, limit, e);
    }));
    out.push_back(std::move(w));
  }
  add_manager_workloads(cfg, only, out, notes);
  add_shm_workloads(cfg, only, out, notes);
  return out;
}

namespace {
// The MPI row compares `workers` ranks of one worker each with a local Pool(workers): the same
// number of worker processes, one network hop (here: shared memory) more.
struct MpiRanksOfOneWorker : mproc::mpi::Pool {
  explicit MpiRanksOfOneWorker(std::size_t ranks) : mproc::mpi::Pool(ranks, 1) {}
};
}  // namespace

int run_mpi_row(int argc, char** argv) {
  std::string workload;
  std::size_t n = 0, workers = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--mpi-row") workload = argv[i + 1];
    if (key == "--n") n = std::stoul(argv[i + 1]);
    if (key == "--workers") workers = std::stoul(argv[i + 1]);
  }
  if ((workload != "map" && workload != "apply") || n == 0) {
    std::fprintf(stderr, "mproc-bench --mpi-row: `map` or `apply` with --n N\n");
    return 2;
  }
  std::string error;
  Result r;
  try {
    r = workload == "map" ? pool_map_rate<MpiRanksOfOneWorker>(n, workers, error)
                          : pool_apply_us<MpiRanksOfOneWorker>(n, workers, error);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!r) {
    std::fprintf(stderr, "mproc-bench --mpi-row: %s\n", error.c_str());
    return 1;
  }
  std::printf("{\"workload\": \"%s\", \"value\": %.6g}\n", workload.c_str(), *r);
  return 0;
}

}  // namespace bench
