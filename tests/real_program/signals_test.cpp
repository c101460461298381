// Ctrl-C (SIGINT to the whole process group) in a program that handles it and in one that
// does not, under every start method.
#include <gtest/gtest.h>
#include <signal.h>

#include "run_scenario.hpp"

namespace {
using mproc_test::run_scenario;

class Sigint : public ::testing::TestWithParam<std::string> {};

TEST_P(Sigint, HandledKeepsThePoolAndFinishesTheWorkInFlight) {
  const auto r = run_scenario("handled_sigint_keeps_the_pool",
                              {.method = GetParam(), .signal_on_ready = SIGINT});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("got SIGINT\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("result 300\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Sigint, HandledLeavesThePoolWorkingWithTheSameWorkers) {
  const auto r = run_scenario("handled_sigint_pool_still_works",
                              {.method = GetParam(), .signal_on_ready = SIGINT});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("workers 2\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("sum 20 same workers 1\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Sigint, HandledKeepsTheManager) {
  const auto r = run_scenario("handled_sigint_keeps_the_manager",
                              {.method = GetParam(), .signal_on_ready = SIGINT});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("value 7\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Sigint, UnhandledEndsTheProgramAndEveryHelper) {
  const auto r = run_scenario("unhandled_sigint_ends_everything",
                              {.method = GetParam(), .signal_on_ready = SIGINT, .deadline_s = 20});
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.signal, SIGINT) << r.describe();
  EXPECT_EQ(r.count("not reached"), 0u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(RealProgram, Sigint, ::testing::Values("fork", "forkserver", "spawn"));
}  // namespace
