// main() for every test binary: mproc::init first, as the README tells users, so that the
// "spawn" start method (whose workers are execs of this binary) and "forkserver" work here.
#include <gtest/gtest.h>

#include <mproc/init.hpp>

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
