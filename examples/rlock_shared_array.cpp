// Ten processes decrement a shared counter under one RLock (seed 001 "进程锁").
//
// Python:  array = Array('i', 1); array[0] = 10; lock = RLock()
//          for i in range(10): Process(target=func, args=(i, array, lock)).start()
//          def func(i, lis, lc): lc.acquire(); lis[0] = lis[0] - 1; time.sleep(1);
//                                print('say hi', lis[0]); lc.release()
//
// The lock makes the decrements and the prints one sequence: the lines are "say hi 9" down to
// "say hi 0", in that order, whichever process prints which. (Each process flushes its output
// before releasing the lock; a child's stdout on a pipe is otherwise written when it exits.)
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

void func(int /*i*/, mproc::Array<int> lis, mproc::RLock lc) {
  std::lock_guard guard(lc);  // lc.acquire() ... lc.release()
  lis[0] = lis[0] - 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::printf("say hi %d\n", lis[0]);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Array<int> array(1);  // one int, 0: Array('i', 1)
  array[0] = 10;
  mproc::RLock lock;
  std::deque<mproc::Process> processes;
  for (int i = 0; i < 10; ++i) processes.emplace_back(func, i, array, lock).start();
  bool ok = true;
  for (auto& p : processes) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  return ok && array[0] == 0 ? 0 : 1;
}
