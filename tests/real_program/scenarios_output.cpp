// Output the program printed before a fork appears once (issue: it appeared once per worker
// when stdout was a pipe or a file, because each child inherited the unwritten stdio buffer).
#include <cstdio>
#include <iostream>

#include <mproc/pool.hpp>
#include <mproc/process.hpp>

#include "scenario.hpp"

namespace {
int square_and_say(int x) {
  std::printf("task says %d\n", x);  // what a task prints still reaches the output
  return x * x;
}
void child_says() {
  std::printf("child says hi\n");
}
}  // namespace

MPROC_SCENARIO(printed_before_pool) {
  std::printf("printf before the pool\n");
  std::cout << "cout before the pool\n";
  std::fprintf(stderr, "stderr before the pool\n");
  {
    mproc::Pool pool(4);
    std::printf("sum %d\n", pool.apply(square_and_say, 3));
    std::printf("between\n");
    (void)pool.map(square_and_say, std::vector<int>{1, 2});
  }
  std::printf("after the pool\n");
  return 0;
}

MPROC_SCENARIO(printed_before_process) {
  std::printf("printf before the process\n");
  std::cout << "cout before the process\n";
  mproc::Process p(child_says);
  p.start();
  p.join();
  std::printf("exit code %d\n", p.exitcode().value_or(-1));
  return 0;
}
