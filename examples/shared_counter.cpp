// Ten pool tasks each add 100 to one shared counter under its lock: prints 1000.
// Python: counter = Value('i', 0); each task does `with counter.get_lock(): counter.value += 1`.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <tuple>
#include <vector>

void add(mproc::Value<int> counter, int times) {
  for (int i = 0; i < times; ++i) {
    std::lock_guard guard(counter);  // a Value locks its own robust RLock
    ++counter.get_obj();
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Value<int> counter(0);
  mproc::Pool pool(4);
  std::vector<std::tuple<mproc::Value<int>, int>> jobs(10, {counter, 100});
  pool.starmap(add, jobs);
  std::printf("%d\n", counter.get());
  return counter.get() == 1000 ? 0 : 1;
}
