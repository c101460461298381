// What remote tracebacks cost (issue 19): a throw caught inside a task with the worker's capture
// on and off, the symbolization a failing task pays, and a failing task's round trip with and
// without a captured stack. Code that does not throw pays nothing: the capture hooks the throw.
#include <benchmark/benchmark.h>

#include <exception>
#include <mproc/mproc.hpp>
#include <stdexcept>

#include "mproc/worker/detail/throw_capture.hpp"
#include "pools.hpp"

namespace {

[[gnu::noinline]] void bench_throw3(int x) {
  if (x >= 0) throw std::runtime_error("bench");
  asm volatile("");
}
[[gnu::noinline]] void bench_throw2(int x) {
  bench_throw3(x);
  asm volatile("");
}
[[gnu::noinline]] void bench_throw1(int x) {
  bench_throw2(x);
  asm volatile("");
}

[[gnu::noinline]] void throw_and_catch(benchmark::State& state) {
  for (auto _ : state) {
    try {
      bench_throw1(1);
    } catch (const std::runtime_error& e) {
      benchmark::DoNotOptimize(&e);
    }
  }
}

// A throw three calls deep, caught where it started: what a task pays for each exception it
// handles itself.
void BM_ThrowCatchCaptureOff(benchmark::State& state) {
  throw_and_catch(state);
}
BENCHMARK(BM_ThrowCatchCaptureOff);

void BM_ThrowCatchCaptureOn(benchmark::State& state) {
  mproc::detail::ThrowCapture capture(__builtin_frame_address(0));
  throw_and_catch(state);
}
BENCHMARK(BM_ThrowCatchCaptureOn);

// Capture plus symbolization: what the worker adds when a task's exception escapes it (after
// the first failure in a process, which also loads the debug info).
void BM_ThrowCaptureAndSymbolize(benchmark::State& state) {
  mproc::detail::ThrowCapture capture(__builtin_frame_address(0));
  std::size_t bytes = 0;
  for (auto _ : state) {
    try {
      bench_throw1(1);
    } catch (const std::runtime_error&) {
      bytes += capture.traceback().size();
    }
  }
  state.counters["bytes"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_ThrowCaptureAndSymbolize);

}  // namespace

// A failing task whose throw the worker captures and symbolizes...
int micro_fail_thrown(int x) {
  bench_throw1(x);
  return x;
}

// ...and one that fails without a captured stack: std::rethrow_exception does not go through
// __cxa_throw, so only the traceback differs between the two round trips.
int micro_fail_rethrown(int x) {
  static const std::exception_ptr e = std::make_exception_ptr(std::runtime_error("bench"));
  if (x >= 0) std::rethrow_exception(e);
  return x;
}

namespace {

template <int (*F)(int)>
void failing_round_trip(benchmark::State& state) {
  auto& pool = micro::pool1();
  for (auto _ : state) {
    try {
      pool.apply(F, 1);
    } catch (const std::runtime_error& e) {
      benchmark::DoNotOptimize(&e);
    }
  }
}

void BM_PoolFailingApplyWithTraceback(benchmark::State& state) {
  failing_round_trip<micro_fail_thrown>(state);
}
BENCHMARK(BM_PoolFailingApplyWithTraceback)->UseRealTime();

void BM_PoolFailingApplyWithoutTraceback(benchmark::State& state) {
  failing_round_trip<micro_fail_rethrown>(state);
}
BENCHMARK(BM_PoolFailingApplyWithoutTraceback)->UseRealTime();

}  // namespace
