// README's "Big data": a sum over an array in named shared memory, cut into slices that go to
// the pool's workers as handles (a name, an offset, a length), never as copies of the data.
#include <cstdio>
#include <mproc/mproc.hpp>
#include <numeric>
#include <span>

double sum_slice(mproc::SharedSpan<const double> xs) {
  return std::accumulate(xs.begin(), xs.end(), 0.0);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // first: the tracker (and spawned workers) are execs of this program
  constexpr std::size_t n = std::size_t{1} << 20;
  auto shm = mproc::SharedMemory::create(n * sizeof(double));
  std::span<double> xs = shm.as<double>();
  std::iota(xs.begin(), xs.end(), 0.0);
  double total = 0;
  {
    mproc::Pool pool(2);
    // 8 handles of ~50 bytes go out; each worker maps the block once.
    auto parts = pool.map(sum_slice, mproc::slices_of<const double>(shm, 8));
    total = std::accumulate(parts.begin(), parts.end(), 0.0);
  }
  std::printf("total = %.0f (expected %.0f)\n", total, n * (n - 1) / 2.0);
  shm.unlink();  // or leave it: the tracker unlinks it when this program ends
  return 0;
}
