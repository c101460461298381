// One thread submits tasks while another checks their results, and the first true result
// terminates the pool (seed 001 "子进程返回值", 多线程+多进程).
//
// Python:  result = queue.Queue(); pool = Pool()
//          def pool_th():
//              for i in range(50000000):
//                  try: result.put(pool.apply_async(test, args=(i,)))
//                  except: break
//          def result_th():
//              while 1:
//                  if result.get().get(): pool.terminate(); break
//          t1 = threading.Thread(target=pool_th); t2 = threading.Thread(target=result_th)
//          t1.start(); t2.start(); t1.join(); t2.join(); pool.join()
//
// Submitting and checking overlap, so checking starts with the first result, not after the
// last submission. Once the pool is terminated, apply_async throws PoolStateError and the
// submitting thread stops. C++ has no thread-safe queue like Python's queue.Queue: the few lines
// of ResultQueue stand in for it.
#include <mproc/mproc.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

bool test(int p) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return p == 200;
}

// queue.Queue for AsyncResults: put never blocks, get waits for an item.
class ResultQueue {
 public:
  void put(mproc::AsyncResult<bool> r) {
    {
      std::lock_guard g(mu_);
      items_.push_back(std::move(r));
    }
    cv_.notify_one();
  }
  mproc::AsyncResult<bool> get() {
    std::unique_lock g(mu_);
    cv_.wait(g, [&] { return !items_.empty(); });
    auto r = std::move(items_.front());
    items_.pop_front();
    return r;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<mproc::AsyncResult<bool>> items_;
};

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  ResultQueue result;
  mproc::Pool pool;  // cpu_count() workers
  int submitted = 0;
  bool stopped_by_terminate = false;
  int found_at = -1;

  auto pool_th = [&] {
    for (int i = 0; i < 1'000'000; ++i) {  // very many tasks (Python: 50,000,000)
      try {
        result.put(pool.apply_async(test, i));
        ++submitted;
      } catch (const mproc::PoolStateError&) {  // terminated: stop submitting
        stopped_by_terminate = true;
        break;
      }
    }
  };
  auto result_th = [&] {
    for (int i = 0;; ++i) {
      if (result.get().get()) {
        found_at = i;
        pool.terminate();
        break;
      }
    }
  };
  std::thread t1(pool_th);
  std::thread t2(result_th);
  t1.join();
  t2.join();
  pool.join();
  std::printf("task %d returned true; the pool was terminated\n", found_at);
  std::printf("the submitting thread %s after %s tasks\n",
              stopped_by_terminate ? "stopped at PoolStateError" : "ran out of work",
              submitted > found_at ? "more than that many" : "too few");
  return found_at == 200 ? 0 : 1;
}
