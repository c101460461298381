// Subclasses of Process that override run() (seed 003 "S_Process", seed 004 §3 "MyProcess").
//
// Python:  class S_Process(mp.Process):
//              def __init__(self, i): super().__init__(); self.i = i
//              def run(self): print(self.name, self.i); time.sleep(2)
//          ps = [S_Process(i) for i in range(10)]; start all; join all; print('end')
//
//          class MyProcess(Process):
//              def __init__(self, n): Process.__init__(self); self.n = n
//              def run(self):
//                  for i in range(self.n): print('-子进程id为%d------i的值为%d---' % (os.getpid(),
//                  i))
//
// The members of the subclass are in the child because under fork the child is a copy of the
// object. (Only the fork start method runs a subclass's run(); spawn needs a target.) As Python
// names these S_Process-1 ... after the class, mproc names them SProcess-1 ...
#include <mproc/mproc.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <thread>

class SProcess : public mproc::Process {
 public:
  explicit SProcess(int i) : i_(i) {}
  void run() override {
    std::printf("%s %d\n", name().c_str(), i_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

 private:
  int i_;
};

class MyProcess : public mproc::Process {
 public:
  explicit MyProcess(int n) : n_(n) {}
  void run() override {
    for (int i = 0; i < n_; ++i) {
      std::printf("-child pid %d------i is %d---\n", static_cast<int>(::getpid()), i);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  int n_;
};

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::printf("%s\n", mproc::current_process().name().c_str());
  std::deque<SProcess> ps;
  for (int i = 0; i < 10; ++i) ps.emplace_back(i).start();
  bool ok = true;
  for (auto& p : ps) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  std::printf("end\n");

  MyProcess p(5);
  p.start();
  p.join();
  std::printf("-----the main process ends now-----\n");
  return ok && p.exitcode() == 0 ? 0 : 1;
}
