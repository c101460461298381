// Stop the pool at the first task that returns true (seed 001 "子进程返回值", 高级用法).
//
// Python (the seed):  pool = Pool(processes=10); q = queue.Queue()
//                     for i in range(50000): q.put(pool.apply_async(test, args=(i,)))
//                     while 1:
//                         if q.get().get(): pool.terminate(); break
//                     pool.join()
//                     def test(p): time.sleep(0.001); return p == 10000
//
// The same with concurrent.futures, which this follows:
//                     with ProcessPoolExecutor(10) as ex:
//                         fs = [ex.submit(test, i) for i in range(20000)]
//                         for f in as_completed(fs):
//                             if f.result():
//                                 ex.shutdown(cancel_futures=True); break
//
// as_completed yields results in the order they finish, so the hit is seen as soon as it is
// computed, not after every task submitted before it; shutdown(cancel_futures) then cancels
// everything not yet started (CancelledError) and lets the few running tasks finish — no
// worker is killed. Most of the 20,000 never run.
#include <mproc/mproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

bool test(int p) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return p == 1000;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(10);
  std::vector<mproc::AsyncResult<bool>> results;
  for (int i = 0; i < 20000; ++i) results.push_back(pool.submit(test, i));
  long found = -1;
  for (const auto& r : mproc::as_completed(results)) {
    if (r.get()) {
      found = std::find(results.begin(), results.end(), r) - results.begin();
      pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);
      break;
    }
  }
  std::printf("the first true result was task %ld\n", found);

  const auto cancelled =
      std::count_if(results.begin(), results.end(), [](const auto& r) { return r.cancelled(); });
  std::printf("%s tasks were cancelled by shutdown(cancel_futures=true)\n",
              cancelled > 0 ? "some" : "no");
  return found == 1000 && cancelled > 0 ? 0 : 1;
}
