// The spawn start method (seed 004 §2: set_start_method('spawn'), and why Windows needs
// `if __name__ == '__main__':`).
//
// Python:  def test(): print('----test--子进程id为%s--' % os.getpid())
//          if __name__ == '__main__':
//              mp.set_start_method('spawn')
//              p1 = Process(target=test); print(os.getpid()); p1.start(); p1.join()
//          print('--main----进程id为%s-' % os.getpid())   # a spawned child prints this too
//
// A spawned child is this program started again: it runs main from the top, and mproc::init is
// where it turns into the child. So what comes before init runs in every spawned process (the
// line below is printed by the parent, the Process and each pool worker) and what comes after
// runs only in the program: mproc::init is the `if __name__ == "__main__":` guard. Keep init
// the first line of main in real programs.
#include <mproc/mproc.hpp>

#include <unistd.h>

#include <cstdio>
#include <string>

void test() {
  std::printf("----test-- child pid %d, parent pid %d--\n", static_cast<int>(::getpid()),
              static_cast<int>(mproc::parent_process()->pid()));
}

std::string worker_name(int) {
  return mproc::current_process().name();
}

int main(int argc, char** argv) {
  std::printf("--top of main, before init---- pid %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);
  mproc::init(argc, argv);  // a spawned child does its work in here and never returns

  mproc::set_start_method("spawn");
  std::printf("start method: %s, main pid %d\n",
              std::string(to_string(mproc::get_start_method())).c_str(),
              static_cast<int>(::getpid()));
  mproc::Process p1(test);
  p1.start();
  p1.join();

  mproc::Pool pool(2);
  const std::string name = pool.apply(worker_name, 0);
  std::printf("a pool task ran in %s\n", name.c_str());
  std::printf("--main---- pid %d\n", static_cast<int>(::getpid()));
  return p1.exitcode() == 0 && name.starts_with("SpawnPoolWorker-") ? 0 : 1;
}
