#include "mproc/pool/detail/run_time_window.hpp"

#include <algorithm>
#include <chrono>

namespace mproc::detail {

std::uint64_t nearest_rank(std::span<std::uint64_t> samples, unsigned per_mille) noexcept {
  const std::size_t n = samples.size();
  if (n == 0) return 0;
  std::size_t rank = (static_cast<std::size_t>(per_mille) * n + 999) / 1000;  // ceil
  rank = std::clamp<std::size_t>(rank, 1, n);
  const auto nth = samples.begin() + static_cast<std::ptrdiff_t>(rank - 1);
  std::nth_element(samples.begin(), nth, samples.end());
  return *nth;
}

PoolStats::RunTimes run_time_percentiles(std::span<std::uint64_t> samples) noexcept {
  PoolStats::RunTimes r;
  r.samples = samples.size();
  // Each nth_element leaves the larger values after the one it placed, where the next,
  // higher percentile is: it then searches the whole span again, which for 1024 values costs
  // a few microseconds and keeps the rank arithmetic in one place.
  r.p50 = std::chrono::nanoseconds(static_cast<std::int64_t>(nearest_rank(samples, 500)));
  r.p90 = std::chrono::nanoseconds(static_cast<std::int64_t>(nearest_rank(samples, 900)));
  r.p99 = std::chrono::nanoseconds(static_cast<std::int64_t>(nearest_rank(samples, 990)));
  return r;
}

}  // namespace mproc::detail
