// Daemon processes (seed 004 "守护进程").
//
// Python:  for i in range(3):
//              p = Process(target=test); p.daemon = True; p.start(); p.join()
//          print('主进程结束')
//          # "join is needed: otherwise the main process exits and ends its daemon children"
//
// The three joined daemons run to the end. A fourth one is not joined: when main returns, the
// program terminates its daemon children (and joins the others), so the fourth never finishes.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

void test() {
  std::printf("---start---- daemon: %s\n", mproc::current_process().daemon() ? "yes" : "no");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::printf("-----end---\n");
}

void sleeper() {
  std::this_thread::sleep_for(std::chrono::seconds(30));
  std::printf("the unjoined daemon finished\n");
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  for (int i = 0; i < 3; ++i) {
    mproc::Process p(test);
    p.daemon(true);  // before start()
    p.start();
    p.join();
    if (p.exitcode() != 0) return 1;
  }
  mproc::Process unjoined(sleeper);
  unjoined.daemon(true);
  unjoined.start();
  std::printf("main process ends\n");
  return 0;  // the unjoined daemon gets SIGTERM here
}
