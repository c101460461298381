// terminate(), is_alive() and join() (seed 004 §4 "终止进程").
//
// Python:  p = Process(target=slow_worker)
//          print("BEFORE:", p, p.is_alive())       # False
//          p.start();     print("DURING:", p, p.is_alive())       # True
//          p.terminate(); print("TERMINATED:", p, p.is_alive())   # usually True: not reaped yet
//          p.join();      print("JOINED:", p, p.is_alive())       # False, exitcode -15
//
// Right after terminate() the child may or may not have died yet (the signal is asynchronous),
// so only the other three lines are checked. The child may not even have printed anything.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

void slow_worker() {
  std::printf("starting worker\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::printf("Finished worker\n");
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Process p(slow_worker);
  const bool before = p.is_alive();
  std::printf("BEFORE: %s %s\n", p.name().c_str(), before ? "True" : "False");
  p.start();
  const bool during = p.is_alive();
  std::printf("DURING: %s %s\n", p.name().c_str(), during ? "True" : "False");
  p.terminate();  // SIGTERM
  std::printf("TERMINATED: %s %s\n", p.name().c_str(), p.is_alive() ? "True" : "False");
  p.join();
  const bool joined = p.is_alive();
  std::printf("JOINED: %s %s exitcode=%d\n", p.name().c_str(), joined ? "True" : "False",
              *p.exitcode());
  return !before && during && !joined && p.exitcode() == -15 ? 0 : 1;
}
