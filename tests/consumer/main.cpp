// Built against the installed package by `cmake/run.sh test`: proves find_package(mproc) works.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <vector>

int cube(int x) {
  return x * x * x;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(2);
  const std::vector<int> r = pool.map(cube, std::vector<int>{1, 2, 3});
  if (r != std::vector<int>{1, 8, 27}) {
    std::puts("consumer: wrong result");
    return 1;
  }
  std::puts("consumer: ok");
  return 0;
}
