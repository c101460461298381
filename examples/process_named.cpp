// Named processes and current_process().name (seed 003, the first Process example).
//
// Python:  print(mp.current_process().name)                       # MainProcess
//          for i in range(10):
//              p = mp.Process(target=p_name, name=f'test_process_{i}', args=(i,)); p.start()
//          ... join all; print('end')
//          def p_name(a): print(mp.current_process().name, 'args:', a); time.sleep(2)
//
// A Process's name is set with name("...") before start(); the child sees it as
// current_process().name(). The ten lines come in any order.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <thread>

void p_name(int a) {
  std::printf("%s args: %d\n", mproc::current_process().name().c_str(), a);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::printf("%s\n", mproc::current_process().name().c_str());
  std::deque<mproc::Process> ps;
  for (int i = 0; i < 10; ++i) {
    auto& p = ps.emplace_back(p_name, i);
    p.name("test_process_" + std::to_string(i));
    p.start();
  }
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  std::printf("end\n");
  return ok ? 0 : 1;
}
