// Pool(5): ten apply_async calls, then close() and join() (seed 001 "进程池", seed 004 §7).
//
// Python:  p = Pool(5)
//          for i in range(10): p.apply_async(func=func, args=(i,))
//          p.close(); p.join()
//          def func(args): time.sleep(1); print('正在执行进程%s' % args)
//
// Five tasks run at a time; which worker runs which task and the order of the lines are races.
// What is defined: close() then join() waits for all ten, so all ten lines are printed.
#include <mproc/mproc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

void func(int args) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::printf("running task %d in %s (pid %d)\n", args, mproc::current_process().name().c_str(),
              static_cast<int>(::getpid()));
  // A pool worker does not flush stdout when it exits (unlike Python's): without this the lines
  // are lost whenever stdout is a pipe or a file. See examples/README.md, "API findings".
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool p(5);
  for (int i = 0; i < 10; ++i) p.apply_async(func, i);
  p.close();  // no more tasks
  p.join();   // waits for all ten
  std::printf("all done\n");
  return 0;
}
