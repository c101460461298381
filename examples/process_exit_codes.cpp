// Process exit codes (seed 004 §5 "进程的退出状态码"): 0 no error, > 0 the process exited with
// that code, < 0 killed by signal -exitcode.
//
// Python:  def exit_error(): sys.exit(1)
//          def exit_ok(): return
//          def return_value(): return 1
//          def raises(): raise RuntimeError("There was an error")
//          def terminated(): time.sleep(3)
//          for f in [...]: j = Process(target=f, name=f.__name__); jobs.append(j); j.start()
//          jobs[-1].terminate()
//          for j in jobs: j.join(); print("%s.exitcode = %s" % (j.name, j.exitcode))
//
// Expected: 1, 0, 0 (a target's return value is discarded), 1 (an exception: the child prints
// "Process raises:" and the error to stderr), -15 (SIGTERM).
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <stdexcept>
#include <thread>
#include <vector>

void exit_error() {
  mproc::exit(1);
}
void exit_ok() {}
int return_value() {
  return 1;
}
void raises() {
  throw std::runtime_error("There was an error");
}
void terminated() {
  std::this_thread::sleep_for(std::chrono::seconds(3));
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::deque<mproc::Process> jobs;
  auto start = [&](auto f, const char* name) {
    std::printf("starting process for %s\n", name);
    auto& j = jobs.emplace_back(f);
    j.name(name);
    j.start();
  };
  start(exit_error, "exit_error");
  start(exit_ok, "exit_ok");
  start(return_value, "return_value");
  start(raises, "raises");
  start(terminated, "terminated");
  jobs.back().terminate();

  std::vector<int> codes;
  for (auto& j : jobs) {
    j.join();
    std::printf("%s.exitcode = %d\n", j.name().c_str(), *j.exitcode());
    codes.push_back(*j.exitcode());
  }
  return codes == std::vector<int>{1, 0, 0, 1, -15} ? 0 : 1;
}
