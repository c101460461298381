// Running out of descriptors never aborts the program, and terminate() stays fast under a low
// RLIMIT_NOFILE (issue 15, items 6 and 8). Scenarios: scenarios_descriptors.cpp.
#include <gtest/gtest.h>

#include <regex>

#include "run_scenario.hpp"

namespace {
using mproc_test::run_scenario;

class Descriptors : public ::testing::TestWithParam<std::string> {};

TEST_P(Descriptors, ReplacementWaitsForDescriptorsInsteadOfAborting) {
  const auto r = run_scenario("emfile_replace_worker", {.method = GetParam(), .deadline_s = 40});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("warm ok 4\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("abort WorkerLostError\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("during ok 9\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("workers back yes\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("after ok 16\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Descriptors, OnlyWorkerIsReplacedOnceDescriptorsAreFree) {
  const auto r =
      run_scenario("emfile_replace_only_worker", {.method = GetParam(), .deadline_s = 40});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("abort WorkerLostError\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("after ok 25\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Descriptors, PoolThatCanStartNoWorkerBreaksWithTheCause) {
  const auto r =
      run_scenario("emfile_no_worker_breaks_pool", {.method = GetParam(), .deadline_s = 40});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("abort WorkerLostError\n"), 1u) << r.describe();
  EXPECT_NE(r.out.find("pending PoolStateError: "), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("Too many open files"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("later PoolStateError: "), std::string::npos) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Descriptors, TerminateIsFastWhenPidfdsDoNotFit) {
  const auto r =
      run_scenario("terminate_under_low_nofile", {.method = GetParam(), .deadline_s = 40});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("sum 2646700\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("workers 40\n"), 1u) << r.describe();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("terminate ms (\\d+)"))) << r.describe();
  // kTerminateGrace is 200 ms; the defect made it the 5 s shutdown deadline.
  EXPECT_LT(std::stol(m[1]), 2000 * mproc_test::kSlowdown) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(RealProgram, Descriptors, ::testing::Values("fork", "forkserver", "spawn"),
                         [](const auto& info) { return info.param; });
}  // namespace
