// A child process gets a copy of the parent's globals, not the globals themselves
// (seed 004 §1 "fork 子进程": "全局变量在多个进程中不共享").
//
// Python:  n = 0
//          ret = os.fork()
//          if ret == 0: ... print(n)   # the child
//          else:        ... print(n)   # the parent: ret is the child's pid
//
// Here the child changes the global, and the parent does not see it: under fork the child's
// memory is a copy-on-write copy of the parent's, under spawn the child starts afresh. (To share
// a number, use mproc::Value; see shared_counter.cpp.)
#include <mproc/mproc.hpp>

#include <unistd.h>

#include <cstdio>

int n = 0;

void child() {
  for (int i = 0; i < 2; ++i) {
    n += 100;
    std::printf("---- child, pid %d: n = %d\n", static_cast<int>(::getpid()), n);
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  std::printf("-----1------ pid %d\n", static_cast<int>(::getpid()));
  mproc::Process p(child);
  p.start();
  p.join();
  std::printf("---- parent, pid %d, child pid %d: n = %d\n", static_cast<int>(::getpid()),
              static_cast<int>(p.pid()), n);
  return p.exitcode() == 0 && n == 0 ? 0 : 1;
}
