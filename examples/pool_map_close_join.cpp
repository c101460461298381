// Pool.map over a list, then close() and join() (seed 001 "Pool+map函数").
//
// Python:  lists = [1, 2, 3]
//          pool = Pool(processes=2); pool.map(test, lists); pool.close(); pool.join()
//          def test(i): print(i)
//
// map passes one argument per call, as in Python (starmap takes tuples of several). The workers
// print in any order; map returns once every item was processed.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <vector>

void test(int i) {
  std::printf("%d\n", i);
  std::fflush(stdout);  // a pool worker does not flush stdout when it exits (examples/README.md)
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::vector<int> lists{1, 2, 3};
  mproc::Pool pool(2);  // at most two processes
  pool.map(test, lists);
  pool.close();
  pool.join();
  std::printf("mapped %zu items\n", lists.size());
  return 0;
}
