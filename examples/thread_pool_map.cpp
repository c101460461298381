// multiprocessing.dummy: the Pool API on threads (seed 001 "Pool+map函数", second example).
//
// Python:  from multiprocessing.dummy import Pool as tp
//          px = tp(processes=8); px.map(fun, [x for x in range(4)]); px.close(); px.join()
//          def fun(i): print(i+i+i+i)
//
// mproc::ThreadPool has the same calls as mproc::Pool: switching is changing one type. The
// threads print in any order; the four lines 0, 4, 8, 12 are all there once map returns.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <ranges>
#include <vector>

void fun(int i) {
  std::printf("%d\n", i + i + i + i);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  auto list_i = std::views::iota(0, 4);
  mproc::ThreadPool px(8);  // eight threads
  px.map(fun, list_i);
  px.close();
  px.join();
  std::printf("done\n");
  return 0;
}
