// mproc/pool/detail/run_time_window.hpp — the last PoolStats::RunTimes::kWindow task run times
// and their percentiles. Internal (namespace detail).
//
// add() runs once per finished task on an engine's event thread: a store and an increment, no
// allocation. The percentiles are computed by whoever asked for them, on a copy.
//
// Thread safety: none (the owner thread's own; callers get a copy).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "mproc/pool/pool_stats.hpp"

namespace mproc::detail {

class RunTimeWindow {
 public:
  static constexpr std::size_t kSize = PoolStats::RunTimes::kWindow;
  static_assert((kSize & (kSize - 1)) == 0, "a power of two: the ring index is a mask");

  void add(std::uint64_t ns) noexcept { ring_[added_++ & (kSize - 1)] = ns; }
  // How many samples it holds (at most kSize).
  std::size_t size() const noexcept { return added_ < kSize ? added_ : kSize; }
  // The samples, in no particular order.
  std::vector<std::uint64_t> samples() const {
    return std::vector<std::uint64_t>(ring_.begin(), ring_.begin() + size());
  }

 private:
  std::array<std::uint64_t, kSize> ring_{};
  std::uint64_t added_ = 0;
};

// The nearest-rank percentile `per_mille` / 10 of `samples` (which it reorders): the value
// with rank ceil(per_mille * n / 1000) in ascending order (rank 1 for per_mille 0). 0 for no
// samples. Integer arithmetic: p99 of 100 samples is exactly the 99th.
std::uint64_t nearest_rank(std::span<std::uint64_t> samples, unsigned per_mille) noexcept;

// p50, p90 and p99 of `samples` (reordered) as PoolStats reports them.
PoolStats::RunTimes run_time_percentiles(std::span<std::uint64_t> samples) noexcept;

}  // namespace mproc::detail
