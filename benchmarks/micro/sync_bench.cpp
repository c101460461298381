// Process-shared locks against std::mutex, measured in the same run: one thread alone
// (uncontended), and two threads on one lock (contended; the same robust futex path two
// processes take). The lock is a process-shared, robust mutex in a memfd arena.
#include <benchmark/benchmark.h>

#include <mproc/synchronize.hpp>

#include <mutex>

namespace {

std::mutex g_std_mutex;
mproc::Lock& shared_lock() {
  static mproc::Lock* lock = new mproc::Lock;
  return *lock;
}
mproc::RLock& shared_rlock() {
  static mproc::RLock* lock = new mproc::RLock;
  return *lock;
}
mproc::Semaphore& shared_semaphore() {
  static mproc::Semaphore* sem = new mproc::Semaphore(1);
  return *sem;
}

template <class L>
void lock_unlock(benchmark::State& state, L& lock) {
  long counter = 0;
  for (auto _ : state) {
    lock.lock();
    benchmark::DoNotOptimize(++counter);
    lock.unlock();
  }
}

void BM_StdMutex(benchmark::State& state) {
  lock_unlock(state, g_std_mutex);
}
void BM_Lock(benchmark::State& state) {
  lock_unlock(state, shared_lock());
}
void BM_RLock(benchmark::State& state) {
  lock_unlock(state, shared_rlock());
}
void BM_Semaphore(benchmark::State& state) {
  auto& sem = shared_semaphore();
  long counter = 0;
  for (auto _ : state) {
    sem.acquire();
    benchmark::DoNotOptimize(++counter);
    sem.release();
  }
}

}  // namespace

BENCHMARK(BM_StdMutex)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Lock)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_RLock)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Semaphore)->Threads(1)->Threads(2)->UseRealTime();
