// A Semaphore lets at most two processes at a time into a section (seed 004 §12
// "控制资源的并发访问--信号量(Semaphore)", which describes it without code: e.g. a connection
// pool that allows a fixed number of connections at once).
//
// Python:  s = multiprocessing.Semaphore(2)
//          def worker(s, ...):
//              with s: ...use the resource...
//          for i in range(6): Process(target=worker, args=(s, ...)).start()
//
// Each worker counts itself in and out of the section in a shared Value; the peak count is
// never above 2. Which workers overlap is a race.
#include <mproc/mproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

void worker(int n, mproc::Semaphore s, mproc::Value<int> active, mproc::Value<int> peak) {
  std::lock_guard slot(s);  // s.acquire() ... s.release()
  {
    std::lock_guard g(active);
    const int now = ++active.get_obj();
    std::lock_guard p(peak);
    peak.get_obj() = std::max(peak.get_obj(), now);
  }
  std::printf("worker %d is using the resource\n", n);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::lock_guard g(active);
  --active.get_obj();
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Semaphore s(2);
  mproc::Value<int> active(0), peak(0);
  std::deque<mproc::Process> ps;
  for (int i = 0; i < 6; ++i) ps.emplace_back(worker, i, s, active, peak).start();
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  std::printf("at most %d workers used the resource at once\n", peak.get());
  return ok && peak.get() >= 1 && peak.get() <= 2 && active.get() == 0 ? 0 : 1;
}
