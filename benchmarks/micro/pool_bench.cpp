// Micro-benchmarks through real pools: an apply round trip, apply_async dispatch, map chunking.
// The pools are created once in main (micro_main.cpp) after mproc::init.
#include <benchmark/benchmark.h>

#include <mproc/mproc.hpp>

#include <numeric>
#include <vector>

#include "pools.hpp"

int micro_trivial(int x) {
  return x + 1;
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

}  // namespace
