// A Lock so that one process at a time prints (seed 002 "进程间同步", seed 004 §10 "控制资源访问").
//
// Python:  def f(l, num):
//              l.acquire()
//              try:
//                  print('hello world', num)
//                  for i in range(1000): print('----test----', num, i)
//              finally:
//                  l.release()
//          lock = Lock()
//          for num in range(10): Process(target=f, args=(lock, num)).start()
//
// The processes take the lock in any order, but each one's block of lines comes out whole:
// the test checks that after "hello world N" come only N's lines. (The process flushes its
// output before it releases the lock; a child's stdout on a pipe is otherwise written at exit.)
#include <mproc/mproc.hpp>

#include <cstdio>
#include <deque>
#include <mutex>

void f(mproc::Lock l, int num) {
  std::lock_guard guard(l);  // acquire ... release, also when an exception leaves
  std::printf("hello world %d\n", num);
  for (int i = 0; i < 100; ++i) std::printf("----test---- %d %d\n", num, i);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Lock lock;
  std::deque<mproc::Process> ps;
  for (int num = 0; num < 10; ++num) ps.emplace_back(f, lock, num).start();
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  return ok ? 0 : 1;
}
