// A Process with arguments (seed 001 "基础用法", seed 004 §2).
//
// Python:  m = Process(target=fun, args=(1,)); m.start()
//          p = Process(target=test, args=('test', 18), kwargs={'m': 20}); p.start(); p.join()
//
// C++ has no keyword arguments: what Python passes as kwargs is one more ordinary argument
// here (a std::map). Arguments are converted to the target's parameter types ("test" becomes a
// std::string) and copied into the child, under fork and spawn alike.
#include <mproc/mproc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

void fun(int i) {
  std::printf("fun(%d) runs in %s, pid %d, parent pid %d\n", i,
              mproc::current_process().name().c_str(), static_cast<int>(::getpid()),
              static_cast<int>(mproc::parent_process()->pid()));
}

void test(std::string func_name, int age, std::map<std::string, int> kwargs) {
  for (int i = 0; i < 3; ++i) {
    std::printf("---child--- func_name=%s, age=%d, pid=%d\n", func_name.c_str(), age,
                static_cast<int>(::getpid()));
    for (const auto& [key, value] : kwargs) std::printf("{'%s': %d}\n", key.c_str(), value);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);

  mproc::Process m(fun, 1);
  m.start();
  m.join();

  mproc::Process p(test, "test", 18, std::map<std::string, int>{{"m", 20}});
  std::printf("parent--%d\n", static_cast<int>(::getpid()));
  p.start();
  p.join();  // the parent waits here until the child has finished
  std::printf("-----the main process exits now----- (exit codes %d, %d)\n", *m.exitcode(),
              *p.exitcode());
  return m.exitcode() == 0 && p.exitcode() == 0 ? 0 : 1;
}
