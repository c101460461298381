// Soft time limits: what polling mproc::this_task::stop_requested() costs inside a worker's
// task, and what a round trip costs with a per-call soft limit, a hard one, or both (beside
// BM_PoolApplyRoundTrip, which has none: the success path without a limit).
#include <benchmark/benchmark.h>

#include <chrono>
#include <mproc/mproc.hpp>

#include "pools.hpp"

// `n` polls in the worker; how many saw a request (0 here: no limit is set).
long micro_poll_stop(long n) {
  long seen = 0;
  for (long i = 0; i < n; ++i) {
    seen += mproc::this_task::stop_requested() ? 1 : 0;
    benchmark::ClobberMemory();  // one real poll per iteration
  }
  return seen;
}

int micro_soft_trivial(int x) {
  return x + 1;
}

namespace {

using namespace std::chrono_literals;

// Per poll (the task's round trip is spread over a million polls).
void BM_StopRequestedInWorkerTask(benchmark::State& state) {
  auto& pool = micro::pool1();
  constexpr long kPolls = 1'000'000;
  long seen = 0;
  for (auto _ : state) seen += pool.apply(micro_poll_stop, kPolls);
  benchmark::DoNotOptimize(seen);
  state.SetItemsProcessed(state.iterations() * kPolls);
}
BENCHMARK(BM_StopRequestedInWorkerTask)->UseRealTime();

// A round trip whose task has a limit that never passes: arg 0 soft, 1 hard, 2 both.
void BM_PoolApplyRoundTripWithLimit(benchmark::State& state) {
  auto& pool = micro::pool1();
  const auto kind = state.range(0);
  const auto limits = kind == 0   ? mproc::with_soft_timeout(60s)
                      : kind == 1 ? mproc::with_timeout(60s)
                                  : mproc::with_timeout(120s).with_soft_timeout(60s);
  int x = 0;
  for (auto _ : state) x = pool.apply(micro_soft_trivial, x, limits);
  benchmark::DoNotOptimize(x);
}
BENCHMARK(BM_PoolApplyRoundTripWithLimit)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
