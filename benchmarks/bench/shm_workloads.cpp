// shm-reduce: the sum of a big array of doubles (1 GiB; 256 MiB with --quick) that lives in one
// named shared-memory block, on `--workers` workers, in GB/s of array reduced:
//   serial          one loop over the whole array in this process, through the mapping that
//                   filled it (every page already in its page table)
//   mproc-shm       pool.map(sum_slice, slices_of<const double>(shm, 8)): each task receives a
//                   SharedSpan (the block's name, an offset, a length: 50 bytes) and sums its
//                   slice where it lies; zero bytes of the array are copied. Timed after each
//                   worker has mapped the block and touched it once (warm-up tasks until every
//                   worker has run one): the steady state of repeated passes, since a worker
//                   maps a block once and keeps the mapping (the per-process cache)
//   serial-cold     the same loop through a fresh mapping (attach, sum, close): page faults in
//   mproc-shm-cold  and the same map on a fresh pool whose workers map the block in the timed
//                   pass: the first pass over a block. With 4 KiB pages (tmpfs huge pages are
//                   off here) a first touch costs ~0.4 us per page, a third of a pass
//   mproc-vector    the same slices copied into std::vector<double> chunks of 16 MiB and sent as
//                   task arguments (2 per worker in flight), as one would without shared memory
//   python-shm      Python's multiprocessing.shared_memory with a fork Pool: each task attaches
//                   by name and sums a memoryview slice (numpy's sum when numpy is installed);
//                   a first pass, like mproc-shm-cold
//   serial-cpu,     GB per CPU-second (CLOCK_THREAD_CPUTIME_ID) of the serial loop and of the
//   mproc-shm-cpu   workers' tasks (mapped, as mproc-shm): equal when the parallel path spends
//                   no CPU per byte beyond the loop's, whatever else the machine runs
// Every engine sums the same values with the same kernel (a plain loop, as std::accumulate);
// values are small integers, so every order of summation gives the exact same total. Each
// measurement makes its own pool and warms it up; not timed: the block's creation and filling.
// shm-reduce-bytes: bytes on the wire per task for the two mproc engines (exact encodings).
#include "shm_workloads.hpp"

#include <unistd.h>

#include <mproc/mproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "workload_support.hpp"

// ---- what runs in the workers (plain functions: mproc names them) ----------------------------

double bench_shm_sum_slice(mproc::SharedSpan<const double> xs) {
  return std::accumulate(xs.begin(), xs.end(), 0.0);
}

double bench_shm_sum_vector(const std::vector<double>& xs) {
  return std::accumulate(xs.begin(), xs.end(), 0.0);
}

// Touches every page of the block once in this worker (its mapping is cached; later calls
// return at once); returns this worker's pid.
int bench_shm_touch_all(mproc::SharedSpan<const double> xs) {
  static std::string touched;
  if (touched != xs.name()) {
    volatile double sink = std::accumulate(xs.begin(), xs.end(), 0.0);
    (void)sink;
    touched = xs.name();
  }
  return static_cast<int>(::getpid());
}

namespace {
std::int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

// The sum and the CPU time this worker spent on it (page faults included).
std::pair<double, std::int64_t> bench_shm_sum_slice_cpu(mproc::SharedSpan<const double> xs) {
  const std::int64_t t0 = thread_cpu_ns();
  const double s = std::accumulate(xs.begin(), xs.end(), 0.0);
  return {s, thread_cpu_ns() - t0};
}

int bench_shm_trivial(int x) {
  return x;
}

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using Result = std::optional<double>;

constexpr std::size_t kSlices = 8;
constexpr std::size_t kVectorChunk = std::size_t{2} << 20;  // doubles: 16 MiB per task

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Result fail(std::string& error, std::string what) {
  error = std::move(what);
  return std::nullopt;
}

// The array, made and filled once per run and shared by every engine and repetition; unlinked
// when the run ends (by the tracker if the run is killed).
struct Array {
  Array() = default;
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  ~Array() {
    if (!owner.here()) return;  // a fork child's copy: the block is the parent's
    try {
      shm.unlink();
    } catch (...) {
    }
  }
  mproc::detail::OwnerPid owner;
  mproc::SharedMemory shm;
  std::size_t n = 0;
  double expected = 0;
};

const Array& live_array(std::size_t bytes) {
  static std::unique_ptr<Array> a;
  if (!a || a->shm.size() != bytes) {
    a.reset();
    auto fresh = std::make_unique<Array>();
    fresh->shm = mproc::SharedMemory::create(bytes);
    auto xs = fresh->shm.as<double>();
    fresh->n = xs.size();
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<double>(i % 8);
    fresh->expected = static_cast<double>(xs.size() / 8) * 28.0;
    a = std::move(fresh);
  }
  return *a;
}

double gbps(std::size_t bytes, double s) {
  return static_cast<double>(bytes) / s / 1e9;
}

Result serial_reduce(std::size_t bytes, bool warm_mapping, std::string& error,
                     bool cpu_time = false) {
  const Array& a = live_array(bytes);
  double s = 0, t = 0;
  if (cpu_time) {
    const auto xs = a.shm.as<const double>();
    const std::int64_t t0 = thread_cpu_ns();
    s = std::accumulate(xs.begin(), xs.end(), 0.0);
    t = static_cast<double>(thread_cpu_ns() - t0) / 1e9;
  } else if (warm_mapping) {  // the creator's own mapping, every page touched when it was filled
    const auto xs = a.shm.as<const double>();
    const auto t0 = Clock::now();
    s = std::accumulate(xs.begin(), xs.end(), 0.0);
    t = seconds_since(t0);
  } else {  // a mapping of its own, as a worker's first pass has
    const auto t0 = Clock::now();
    auto shm = mproc::SharedMemory::attach(a.shm.name());
    const auto xs = shm.as<const double>();
    s = std::accumulate(xs.begin(), xs.end(), 0.0);
    shm.close();
    t = seconds_since(t0);
  }
  if (s != a.expected) return fail(error, "wrong sum");
  return gbps(bytes, t);
}

void warm(mproc::Pool& pool) {
  std::vector<int> in(100);
  std::iota(in.begin(), in.end(), 0);
  (void)pool.map(bench_shm_trivial, in, 1);
}

Result shm_reduce(std::size_t bytes, std::size_t workers, bool warm_mapping, bool cpu_time,
                  std::string& error) {
  const Array& a = live_array(bytes);
  mproc::Pool pool(workers);
  warm(pool);
  if (warm_mapping) {
    // Each worker maps the block and touches all of it, once (later tasks on it return at
    // once), until every worker has: rounds of 4 tasks per worker, a few at most.
    const std::vector<pid_t> pids = pool.worker_pids();
    std::set<pid_t> done;
    for (int round = 0; round < 20 && done.size() < pids.size(); ++round) {
      const std::vector<mproc::SharedSpan<const double>> whole(
          4 * workers, mproc::SharedSpan<const double>(a.shm));
      for (int pid : pool.map(bench_shm_touch_all, whole, 1)) done.insert(pid);
    }
    if (done.size() < pids.size()) return fail(error, "a worker never received a warm-up task");
  }
  if (cpu_time) {  // GB per CPU-second of the workers, whatever else the machine runs
    const auto parts =
        pool.map(bench_shm_sum_slice_cpu, mproc::slices_of<const double>(a.shm, kSlices), 1);
    double s = 0;
    std::int64_t ns = 0;
    for (const auto& [part, t] : parts) {
      s += part;
      ns += t;
    }
    if (s != a.expected) return fail(error, "wrong sum");
    return gbps(bytes, static_cast<double>(ns) / 1e9);
  }
  const auto t0 = Clock::now();
  const auto parts =
      pool.map(bench_shm_sum_slice, mproc::slices_of<const double>(a.shm, kSlices), 1);
  const double s = std::accumulate(parts.begin(), parts.end(), 0.0);
  const double t = seconds_since(t0);
  if (s != a.expected) return fail(error, "wrong sum");
  return gbps(bytes, t);
}

Result vector_reduce(std::size_t bytes, std::size_t workers, std::string& error) {
  const Array& a = live_array(bytes);
  const auto xs = a.shm.as<const double>();
  mproc::Pool pool(workers);
  warm(pool);
  const auto t0 = Clock::now();
  double s = 0;
  std::deque<mproc::AsyncResult<double>> in_flight;
  for (std::size_t at = 0; at < xs.size(); at += kVectorChunk) {
    const std::size_t len = std::min(kVectorChunk, xs.size() - at);
    std::vector<double> chunk(xs.begin() + static_cast<std::ptrdiff_t>(at),
                              xs.begin() + static_cast<std::ptrdiff_t>(at + len));
    in_flight.push_back(pool.apply_async(bench_shm_sum_vector, std::move(chunk)));
    if (in_flight.size() >= 2 * workers) {
      s += in_flight.front().get();
      in_flight.pop_front();
    }
  }
  for (auto& r : in_flight) s += r.get();
  const double t = seconds_since(t0);
  if (s != a.expected) return fail(error, "wrong sum");
  return gbps(bytes, t);
}

template <class T>
double wire_bytes(const T& value) {
  mproc::detail::Bytes out;
  mproc::detail::WireOutputArchive ar(out);
  ar(value);
  return static_cast<double>(out.size());
}

bool python_has_numpy(const std::string& python) {
  const std::string cmd = shell_quote(python) + " -c 'import numpy' > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

std::vector<std::string> append_shm_workload_names(std::vector<std::string> names) {
  names.push_back("shm-reduce");
  names.push_back("shm-reduce-bytes");
  return names;
}

void add_shm_workloads(const Config& cfg, const std::vector<std::string>& only,
                       std::vector<Workload>& out, std::vector<std::string>& notes) {
  auto wanted = [&](const std::string& name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };
  const std::size_t bytes = cfg.quick ? (std::size_t{256} << 20) : (std::size_t{1} << 30);
  const std::size_t k = cfg.workers;
  const std::string u = "GB/s";
  const std::size_t n = bytes / sizeof(double);
  if (wanted("shm-reduce")) {
    Workload w{"shm-reduce",
               "sum of " + std::to_string(bytes >> 20) + " MiB of doubles in named shared memory",
               {},
               {}};
    w.engines.push_back(
        engine("serial", u, n, [bytes](std::string& e) { return serial_reduce(bytes, true, e); }));
    w.engines.push_back(engine("mproc-shm", u, n, [bytes, k](std::string& e) {
      return shm_reduce(bytes, k, true, false, e);
    }));
    w.engines.push_back(engine("serial-cold", u, n,
                               [bytes](std::string& e) { return serial_reduce(bytes, false, e); }));
    w.engines.push_back(engine("mproc-shm-cold", u, n, [bytes, k](std::string& e) {
      return shm_reduce(bytes, k, false, false, e);
    }));
    w.engines.push_back(engine("mproc-vector", u, n,
                               [bytes, k](std::string& e) { return vector_reduce(bytes, k, e); }));
    // GB per CPU-second: whether the parallel path costs more CPU per byte than the loop, on a
    // machine where other programs may take CPUs from the wall-clock rows.
    w.engines.push_back(engine("serial-cpu", "GB/cpu-s", n, [bytes](std::string& e) {
      return serial_reduce(bytes, true, e, true);
    }));
    w.engines.push_back(engine("mproc-shm-cpu", "GB/cpu-s", n, [bytes, k](std::string& e) {
      return shm_reduce(bytes, k, true, true, e);
    }));
    w.ratios.push_back(
        ratio("shm-reduce", "mproc-shm / serial (speed-up, mapped)", "mproc-shm", "serial", 1.8));
    w.ratios.push_back(ratio("shm-reduce", "mproc-shm-cpu / serial-cpu (1 = no CPU per byte extra)",
                             "mproc-shm-cpu", "serial-cpu"));
    w.ratios.push_back(ratio("shm-reduce", "mproc-shm-cold / serial-cold (first pass)",
                             "mproc-shm-cold", "serial-cold"));
    w.ratios.push_back(
        ratio("shm-reduce", "mproc-shm / mproc-vector", "mproc-shm", "mproc-vector"));
    if (cfg.python) {
      const std::string script =
          (std::filesystem::path(cfg.python->script).parent_path() / "shm_bench.py").string();
      const bool numpy = python_has_numpy(cfg.python->exe);
      notes.push_back(std::string("shm-reduce: python-shm sums with ") +
                      (numpy ? "numpy" : "memoryview (python3-numpy is not installed)"));
      const std::string cmd = shell_quote(cfg.python->exe) + ' ' + shell_quote(script) +
                              " --bytes " + std::to_string(bytes) + " --workers " +
                              std::to_string(k) + " --slices " + std::to_string(kSlices) + " 2>&1";
      w.engines.push_back(engine("python-shm", u, n, [cmd](std::string& e) {
        return run_for_value(cmd, "python shm_bench.py", e);
      }));
      w.ratios.push_back(ratio("shm-reduce", "mproc-shm-cold / python-shm (both first pass)",
                               "mproc-shm-cold", "python-shm"));
    }
    out.push_back(std::move(w));
  }
  if (wanted("shm-reduce-bytes")) {
    // The task argument's exact encoding: what crosses per task besides the frame header.
    auto shm = mproc::SharedMemory::create(kVectorChunk * sizeof(double));
    const double span_bytes = wire_bytes(mproc::SharedSpan<const double>(shm));
    const double vector_bytes = wire_bytes(
        std::vector<double>(shm.as<const double>().begin(), shm.as<const double>().end()));
    shm.unlink();
    Workload w{"shm-reduce-bytes", "bytes on the wire per task (the argument's encoding)", {}, {}};
    w.engines.push_back(engine("mproc-shm", "B/task", 1,
                               [span_bytes](std::string&) { return Result(span_bytes); }));
    w.engines.push_back(engine("mproc-vector", "B/task", 1,
                               [vector_bytes](std::string&) { return Result(vector_bytes); }));
    w.ratios.push_back(ratio("shm-reduce-bytes", "mproc-vector / mproc-shm (x more bytes)",
                             "mproc-vector", "mproc-shm"));
    notes.push_back("shm-reduce: array bytes copied per task: mproc-shm 0 (a " +
                    std::to_string(static_cast<long>(span_bytes)) +
                    "-byte SharedSpan handle), mproc-vector " +
                    std::to_string(static_cast<long>(vector_bytes)) +
                    " (a 16 MiB chunk), python-shm 0 (a (name, start, stop) tuple)");
    out.push_back(std::move(w));
  }
}

}  // namespace bench
