// README's "More than one machine": the ordinary Pool code, its pool made over MPI ranks.
//   mpirun -n 3 ./more_than_one_machine      (add --hostfile hosts for several machines)
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <ranges>

int square(int x) {
  return x * x;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);                                 // ranks 1..N-1 become workers here
  mproc::Pool pool = mproc::get_context("mpi").Pool();     // or: mproc::mpi::Pool pool;
  for (int y : pool.map(square, std::views::iota(0, 10)))  // everything below: unchanged
    std::printf("%d ", y);
  auto r = pool.apply_async(square, 7);
  std::printf("%d\n", r.get(std::chrono::seconds(1)));
}
