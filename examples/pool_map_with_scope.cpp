// `with Pool(5) as p: print(p.map(...))` (seed 002 "Pool对象").
//
// Python:  with Pool(5) as p:
//              print(p.map(start, [i for i in range(4)]))     # [0, 1, 8, 27]
//          def start(x): return x*x*x
//
// A block scope is C++'s `with`: the pool lives until the closing brace. One difference:
// Python's `with` terminates the pool on exit, ~Pool closes and joins it (nothing submitted is
// lost). map returns the results in input order.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <ranges>
#include <vector>

int start(int x) {
  return x * x * x;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::vector<int> cubes;
  {
    mproc::Pool p(5);
    cubes = p.map(start, std::views::iota(0, 4));
    std::printf("[");
    for (std::size_t i = 0; i < cubes.size(); ++i) std::printf(i ? ", %d" : "%d", cubes[i]);
    std::printf("]\n");
  }  // ~Pool: close() and join()
  return cubes == std::vector<int>{0, 1, 8, 27} ? 0 : 1;
}
