// Ten processes pass one token through a bounded queue (seed 001 "使用queues的Queue类共享数据").
//
// Python:  lis = queues.Queue(20, ctx=multiprocessing); lis.put(0)
//          for i in range(10): Process(target=func, args=(i, lis)).start()
//          def func(i, q): ret = q.get(); print(...); q.put(i)
//
// Which process gets the token when is a race. What is defined: every process takes exactly
// one token and puts back its own number, so after all of them ran exactly one token is left,
// and it is the number of the last process to run.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <deque>

void func(int i, mproc::Queue<int> q) {
  const int ret = q.get();
  std::printf("process %d took %d from the queue, then put %d back\n", i, ret, i);
  q.put(i);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Queue<int> lis(20);
  lis.put(0);
  std::deque<mproc::Process> processes;
  for (int i = 0; i < 10; ++i) processes.emplace_back(func, i, lis).start();
  bool ok = true;
  for (auto& p : processes) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  const int left = lis.get_nowait();
  std::printf("left in the queue: %d (queue now empty: %s)\n", left, lis.empty() ? "yes" : "no");
  return ok && left >= 0 && left < 10 && lis.empty() ? 0 : 1;
}
