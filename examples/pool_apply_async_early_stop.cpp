// Stop the pool at the first task that returns true (seed 001 "子进程返回值", 高级用法).
//
// Python:  pool = Pool(processes=10); q = queue.Queue()
//          for i in range(50000): q.put(pool.apply_async(test, args=(i,)))
//          while 1:
//              if q.get().get(): pool.terminate(); break
//          pool.join()
//          def test(p): time.sleep(0.001); return p == 10000
//
// Results are checked in submission order while the workers go on; the first true one
// terminates the pool, which kills the workers and fails every task that had not finished with
// PoolStateError: most of the 20,000 never run.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <thread>

bool test(int p) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return p == 1000;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(10);
  std::deque<mproc::AsyncResult<bool>> q;
  for (int i = 0; i < 20000; ++i) q.push_back(pool.apply_async(test, i));
  int checked = 0;
  while (!q.empty()) {
    const bool found = q.front().get();
    q.pop_front();
    ++checked;
    if (found) {
      pool.terminate();  // kills the workers: what had not run never will
      break;
    }
  }
  pool.join();
  std::printf("the first true result was task %d\n", checked - 1);

  std::size_t cancelled = 0;
  for (auto& r : q) {
    try {
      r.get();
    } catch (const mproc::PoolStateError&) {
      ++cancelled;
    }
  }
  std::printf("%s tasks were left unfinished by terminate()\n", cancelled > 0 ? "some" : "no");
  return checked == 1001 && cancelled > 0 ? 0 : 1;
}
