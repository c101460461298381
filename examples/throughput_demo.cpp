// The README's main job: pool.map of a CPU-bound function over a few thousand inputs, timed
// against the same loop run serially in this process.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

// About half a millisecond here of floating-point work per input.
double work(int seed) {
  double acc = seed;
  for (int i = 1; i < 20'000; ++i) acc = std::sin(acc) + std::sqrt(acc * acc + i);
  return acc;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::vector<int> inputs(4000);
  std::iota(inputs.begin(), inputs.end(), 0);
  using clock = std::chrono::steady_clock;

  auto t0 = clock::now();
  std::vector<double> serial;
  serial.reserve(inputs.size());
  for (int x : inputs) serial.push_back(work(x));
  const double serial_s = std::chrono::duration<double>(clock::now() - t0).count();

  mproc::Pool pool;  // cpu_count() workers
  t0 = clock::now();
  const std::vector<double> parallel = pool.map(work, inputs);
  const double pool_s = std::chrono::duration<double>(clock::now() - t0).count();

  if (parallel != serial) {
    std::puts("results differ from the serial run!");
    return 1;
  }
  std::printf("pool.map of %zu CPU-bound tasks on %zu workers\n", inputs.size(), pool.processes());
  std::printf("  serial : %8.3f s\n", serial_s);
  std::printf("  mproc  : %8.3f s\n", pool_s);
  std::printf("  speedup: %8.2fx (ideal %zux)\n", serial_s / pool_s, pool.processes());
  return 0;
}
