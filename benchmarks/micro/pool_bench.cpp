// Micro-benchmarks through real pools: an apply round trip, apply_async dispatch, map chunking,
// stats(), a payload echo through shared memory or the socket.
// The pools are created once in main (micro_main.cpp) after mproc::init.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <mproc/mproc.hpp>
#include <mproc/pool/detail/run_time_window.hpp>
#include <mproc/pool/detail/stats_exchange.hpp>

#include <numeric>
#include <vector>

#include "pools.hpp"

int micro_trivial(int x) {
  return x + 1;
}

std::vector<char> micro_echo(std::vector<char> v) {
  return v;
}

namespace {

void BM_PoolApplyRoundTrip(benchmark::State& state) {
  auto& pool = micro::pool1();
  int x = 0;
  for (auto _ : state) x = pool.apply(micro_trivial, x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_PoolApplyRoundTrip)->UseRealTime();

void BM_ThreadPoolApplyRoundTrip(benchmark::State& state) {
  auto& pool = micro::thread_pool1();
  int x = 0;
  for (auto _ : state) x = pool.apply(micro_trivial, x);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_ThreadPoolApplyRoundTrip)->UseRealTime();

// A payload of range(0) bytes echoed by one worker, through its shared payload buffers
// (range(1) == 1: PoolOptions::shared_payload_min = 1) or its socket (0): where sharing starts
// to pay is PoolOptions::shared_payload_min's default. Its own pool: the option is per pool.
void BM_PoolEchoBytes(benchmark::State& state) {
  mproc::PoolOptions o;
  o.processes = 1;
  o.shared_payload_min = state.range(1) != 0 ? 1 : 0;
  mproc::Pool pool(o);
  const std::vector<char> payload(static_cast<std::size_t>(state.range(0)), 'p');
  for (int i = 0; i < 3; ++i) benchmark::DoNotOptimize(pool.apply(micro_echo, payload));
  for (auto _ : state) benchmark::DoNotOptimize(pool.apply(micro_echo, payload));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PoolEchoBytes)
    ->ArgsProduct({{4 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20}, {0, 1}})
    ->UseRealTime();

// `batch` apply_async submissions then every get, on the two-worker pool.
void BM_PoolApplyAsyncDispatch(benchmark::State& state) {
  auto& pool = micro::pool2();
  const auto batch = static_cast<int>(state.range(0));
  std::vector<mproc::AsyncResult<int>> rs;
  rs.reserve(static_cast<std::size_t>(batch));
  for (auto _ : state) {
    rs.clear();
    for (int i = 0; i < batch; ++i) rs.push_back(pool.apply_async(micro_trivial, i));
    long sum = 0;
    for (auto& r : rs) sum += r.get();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_PoolApplyAsyncDispatch)->Arg(1)->Arg(100)->Arg(10000)->UseRealTime();

// Submission alone (the caller's cost of apply_async; the results are collected untimed).
void BM_PoolApplyAsyncSubmitOnly(benchmark::State& state) {
  auto& pool = micro::pool2();
  std::vector<mproc::AsyncResult<int>> rs;
  rs.reserve(1000);
  for (auto _ : state) {
    rs.push_back(pool.apply_async(micro_trivial, 1));
    if (rs.size() == 1000) {
      state.PauseTiming();
      for (auto& r : rs) benchmark::DoNotOptimize(r.get());
      rs.clear();
      state.ResumeTiming();
    }
  }
  for (auto& r : rs) benchmark::DoNotOptimize(r.get());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PoolApplyAsyncSubmitOnly);

// map of 100,000 ints with chunksize = the argument (0: Python's default, 12,500 here).
void BM_PoolMapChunksize(benchmark::State& state) {
  auto& pool = micro::pool2();
  std::vector<int> in(100'000);
  std::iota(in.begin(), in.end(), 0);
  const auto chunksize = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto out = pool.map(micro_trivial, in, chunksize);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<long>(in.size()));
}
BENCHMARK(BM_PoolMapChunksize)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// pool.stats() on the idle two-worker pool: the round trip to the I/O thread, its snapshot, the
// percentiles and one /proc/<pid>/statm read per worker (what a monitoring thread pays).
void BM_PoolStats(benchmark::State& state) {
  auto& pool = micro::pool2();
  pool.map(micro_trivial, std::vector<int>(2048, 1), 1);  // a full run-time window
  std::size_t workers = 0;
  for (auto _ : state) workers += pool.stats().workers.size();
  benchmark::DoNotOptimize(workers);
}
BENCHMARK(BM_PoolStats)->UseRealTime();

void BM_ThreadPoolStats(benchmark::State& state) {
  auto& pool = micro::thread_pool1();
  pool.map(micro_trivial, std::vector<int>(2048, 1), 1);
  std::size_t workers = 0;
  for (auto _ : state) workers += pool.stats().workers.size();
  benchmark::DoNotOptimize(workers);
}
BENCHMARK(BM_ThreadPoolStats)->UseRealTime();

// The parts of stats() on the caller's thread: p50/p90/p99 of a full window, one RSS read.
void BM_StatsPercentiles(benchmark::State& state) {
  mproc::detail::RunTimeWindow w;
  for (std::uint64_t i = 0; i < 4096; ++i) w.add((i * 2654435761u) % 1'000'000);
  for (auto _ : state) {
    auto samples = w.samples();
    benchmark::DoNotOptimize(mproc::detail::run_time_percentiles(samples));
  }
}
BENCHMARK(BM_StatsPercentiles);

void BM_StatsResidentBytes(benchmark::State& state) {
  const pid_t self = ::getpid();
  for (auto _ : state) benchmark::DoNotOptimize(mproc::detail::resident_bytes(self));
}
BENCHMARK(BM_StatsResidentBytes);

}  // namespace
