// Two ways to say what a Process runs: a target function, or a subclass overriding run()
// (seed 002 "Process类": the simple example and "自定义,等同于上面").
//
// Python:  process1 = Process(target=example, args=("snake",)); process1.start()
//          class Start(Process):
//              def __init__(self, name): Process.__init__(self); self.name = name
//              def run(self): print("l am a {}".format(self.name)); time.sleep(2); print('end')
//
// Both print the same lines; the two processes of each pair run at once, so their lines
// interleave in any order. A subclass's run() runs as is only under fork (it cannot cross an
// exec): use a target to run under spawn.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

void example(std::string name) {
  std::printf("l am a %s\n", name.c_str());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::printf("end\n");
}

class Start : public mproc::Process {
 public:
  explicit Start(std::string who) { name(std::move(who)); }
  void run() override {
    std::printf("l am a %s (run)\n", name().c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::printf("end\n");
  }
};

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::printf("mainProcess\n");
  mproc::Process process1(example, "snake");
  mproc::Process process2(example, "tom");
  process1.start();
  process2.start();
  process1.join();
  process2.join();

  Start process3("snake");
  Start process4("tom");
  process3.start();
  process4.start();
  process3.join();
  process4.join();
  const bool ok = process1.exitcode() == 0 && process2.exitcode() == 0 &&
                  process3.exitcode() == 0 && process4.exitcode() == 0;
  return ok ? 0 : 1;
}
