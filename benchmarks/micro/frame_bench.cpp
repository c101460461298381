// Micro-benchmarks of the wire: frame headers, encoding a task, the worker's decode + call +
// encode of a chunk, and decoding results. No processes involved.
#include <benchmark/benchmark.h>

#include <mproc/pool/detail/tasks.hpp>
#include <mproc/serialize/detail/callable.hpp>
#include <mproc/serialize/detail/frame.hpp>
#include <mproc/serialize/detail/wire_archive.hpp>

#include <numeric>
#include <span>
#include <string>
#include <tuple>
#include <vector>

int micro_wire_trivial(int x) {
  return x + 1;
}

namespace {

using mproc::detail::Bytes;
using mproc::detail::CallShape;

// A task whose outcome goes nowhere: what encode_chunk needs to write into.
class NullTask final : public mproc::detail::Task {
 public:
  void on_ok(std::span<const char>) noexcept override {}
  void on_error(std::exception_ptr) noexcept override {}
};

void BM_FrameBeginFinish(benchmark::State& state) {
  Bytes b;
  b.reserve(256);
  const char payload[16] = "sixteen bytes..";
  for (auto _ : state) {
    b.clear();
    const std::size_t at = mproc::detail::begin_frame(b);
    b.insert(b.end(), payload, payload + sizeof payload);
    mproc::detail::finish_frame(b, at, mproc::detail::FrameKind::kTask, 42, 0);
    benchmark::DoNotOptimize(b.data());
  }
}
BENCHMARK(BM_FrameBeginFinish);

void BM_FrameParseHeader(benchmark::State& state) {
  Bytes b;
  const std::size_t at = mproc::detail::begin_frame(b);
  b.resize(b.size() + 16);
  mproc::detail::finish_frame(b, at, mproc::detail::FrameKind::kResultOk, 42, 1000);
  for (auto _ : state) {
    auto h = mproc::detail::parse_frame_header(std::span<const char>(b), 1 << 30);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_FrameParseHeader);

// What apply(f, 7) encodes on the caller's thread: callable, location of f, one argument.
void BM_EncodeApplyTask(benchmark::State& state) {
  using Fn = int (*)(int);
  const Fn f = micro_wire_trivial;
  const std::tuple<int> item(7);
  for (auto _ : state) {
    NullTask t;
    const std::tuple<int>* p = &item;
    mproc::detail::encode_chunk<Fn, std::tuple<int>, CallShape::kApply>(t, f, p, 1, 1 << 30);
    benchmark::DoNotOptimize(t.frame.data());
  }
}
BENCHMARK(BM_EncodeApplyTask);

// One map chunk of `n` ints.
void BM_EncodeChunkInts(benchmark::State& state) {
  using Fn = int (*)(int);
  const Fn f = micro_wire_trivial;
  std::vector<int> in(static_cast<std::size_t>(state.range(0)));
  std::iota(in.begin(), in.end(), 0);
  for (auto _ : state) {
    NullTask t;
    auto it = in.begin();
    mproc::detail::encode_chunk<Fn, int, CallShape::kMap>(
        t, f, it, static_cast<std::uint32_t>(in.size()), 1 << 30);
    benchmark::DoNotOptimize(t.frame.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EncodeChunkInts)->Arg(1)->Arg(1000)->Arg(100000);

// The worker's side of one chunk: resolve the callable, decode, call, encode the results.
void BM_InvokePayloadInts(benchmark::State& state) {
  using Fn = int (*)(int);
  const Fn f = micro_wire_trivial;
  std::vector<int> in(static_cast<std::size_t>(state.range(0)));
  std::iota(in.begin(), in.end(), 0);
  NullTask t;
  auto it = in.begin();
  mproc::detail::encode_chunk<Fn, int, CallShape::kMap>(
      t, f, it, static_cast<std::uint32_t>(in.size()), 1 << 30);
  const std::span<const char> payload(t.frame.data() + mproc::detail::kFrameHeaderSize,
                                      t.frame.size() - mproc::detail::kFrameHeaderSize);
  Bytes out;
  for (auto _ : state) {
    out.clear();
    mproc::detail::invoke_payload(payload, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_InvokePayloadInts)->Arg(1)->Arg(1000)->Arg(100000);

void BM_DecodeResultsInts(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  std::vector<int> values(n, 3);
  Bytes payload;
  mproc::detail::WireOutputArchive ar(payload);
  for (int v : values) ar(v);
  std::vector<int> out(n);
  for (auto _ : state) {
    mproc::detail::decode_results(std::span<const char>(payload), out.data(), n);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_DecodeResultsInts)->Arg(1)->Arg(1000);

// A 1 MiB std::vector<char> through the archives (the payload workload's per-copy cost).
void BM_WireRoundTripBytes(benchmark::State& state) {
  const std::vector<char> v(static_cast<std::size_t>(state.range(0)), 'p');
  Bytes buf;
  std::vector<char> back;
  for (auto _ : state) {
    buf.clear();
    mproc::detail::WireOutputArchive out(buf);
    out(v);
    mproc::detail::WireInputArchive in{std::span<const char>(buf)};
    in(back);
    benchmark::DoNotOptimize(back.data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_WireRoundTripBytes)->Arg(1 << 10)->Arg(1 << 20);

}  // namespace
