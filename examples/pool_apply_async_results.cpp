// Collecting the results of many apply_async calls (seed 001 "子进程返回值", 初级用法).
//
// Python:  pool = Pool(processes=10); result = []
//          for i in range(50000): result.append(pool.apply_async(test, args=(i,)))
//          pool.close(); pool.join()
//          for i in result: print(i.get())
//          def test(p): return p
//
// Ten tasks run at a time; the results are read after join(), in submission order.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <vector>

int test(int p) {
  return p;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(10);
  std::vector<mproc::AsyncResult<int>> result;
  for (int i = 0; i < 50000; ++i) result.push_back(pool.apply_async(test, i));
  pool.close();
  pool.join();
  long long sum = 0;
  bool in_order = true;
  for (std::size_t i = 0; i < result.size(); ++i) {
    const int r = result[i].get();
    std::printf("%d\n", r);
    sum += r;
    in_order = in_order && r == static_cast<int>(i);
  }
  std::printf("collected %zu results, sum %lld\n", result.size(), sum);
  return in_order && sum == 50000LL * 49999 / 2 ? 0 : 1;
}
