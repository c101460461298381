// What relaying pool workers' logs to the parent costs (issue 19, item 5): a log call below the
// level (all a task that does not log pays, in any process), and a line a task logs, as the
// worker pays it (format, encode, one send) with the parent's relay delivering every line to
// a sink.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mproc/mproc.hpp>
#include <mutex>
#include <vector>

namespace {

class CountingSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::uint64_t count() const { return count_.load(); }

 protected:
  void sink_it_(const spdlog::details::log_msg&) override { count_.fetch_add(1); }
  void flush_() override {}

 private:
  std::atomic<std::uint64_t> count_{0};
};

}  // namespace

// In a worker: logs `n` lines; returns the nanoseconds they took in all.
long micro_log_lines(int n) {
  auto log = mproc::get_logger();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) log->info("line {} of a task's log, with a number {}", i, 3.25);
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
}

namespace {

void BM_LogCallBelowLevel(benchmark::State& state) {
  auto log = mproc::get_logger();
  const auto saved = log->level();
  log->set_level(spdlog::level::off);
  int i = 0;
  for (auto _ : state) log->info("not logged {}", ++i);
  log->set_level(saved);
}
BENCHMARK(BM_LogCallBelowLevel);

// The same line written by mproc's stderr sink (stderr sent to /dev/null): what a worker paid
// per line before its records went to the parent.
void BM_LogLineToOwnStderr(benchmark::State& state) {
  auto log = mproc::get_logger();
  const auto saved = log->level();
  log->set_level(spdlog::level::info);
  const int saved_stderr = ::dup(2);
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ::dup2(null, 2);
  int i = 0;
  for (auto _ : state) log->info("line {} of a task's log, with a number {}", ++i, 3.25);
  ::dup2(saved_stderr, 2);
  ::close(saved_stderr);
  ::close(null);
  log->set_level(saved);
}
BENCHMARK(BM_LogLineToOwnStderr);

double process_cpu_ns() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
          static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec)) *
         1e3;
}

double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// A one-worker pool made while the parent logs at `level` into one counting sink; each
// iteration is a task that logs 1000 lines. Counters: the worker's time per line, the CPU the
// parent's other threads (the relay's, the I/O thread's) spent per line, and the share of lines
// the parent's sink received by join().
void pool_task_logs(benchmark::State& state, spdlog::level::level_enum level) {
  constexpr int kLines = 1000;
  auto log = mproc::get_logger();
  const auto saved_level = log->level();
  const std::vector<spdlog::sink_ptr> saved_sinks = log->sinks();
  auto sink = std::make_shared<CountingSink>();
  log->sinks() = {sink};
  log->set_level(level);
  double worker_ns = 0;
  double parent_ns = 0;
  {
    mproc::Pool pool(1);
    const double cpu0 = process_cpu_ns() - thread_cpu_ns();
    for (auto _ : state) worker_ns += static_cast<double>(pool.apply(micro_log_lines, kLines));
    pool.close();
    pool.join();
    parent_ns = process_cpu_ns() - thread_cpu_ns() - cpu0;
  }
  const double lines = static_cast<double>(state.iterations()) * kLines;
  state.counters["worker_ns_per_line"] = worker_ns / lines;
  state.counters["parent_ns_per_line"] = parent_ns / lines;
  state.counters["delivered"] = static_cast<double>(sink->count()) / lines;
  state.SetItemsProcessed(static_cast<std::int64_t>(lines));
  log->set_level(saved_level);
  log->sinks() = saved_sinks;
}

void BM_PoolTaskLogs1000LinesRelayed(benchmark::State& state) {
  pool_task_logs(state, spdlog::level::info);
}
BENCHMARK(BM_PoolTaskLogs1000LinesRelayed)->UseRealTime();

void BM_PoolTaskLogs1000LinesBelowLevel(benchmark::State& state) {
  pool_task_logs(state, spdlog::level::warn);
}
BENCHMARK(BM_PoolTaskLogs1000LinesBelowLevel)->UseRealTime();

}  // namespace
