// What a program printed before a pool or a Process was made appears exactly once, under every
// start method, whether stdout is a pipe or a file; what tasks print still arrives.
#include <gtest/gtest.h>

#include "run_scenario.hpp"

namespace {
using mproc_test::run_scenario;
using mproc_test::ScenarioOptions;

class Output : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(Output, PrintedBeforeAPoolAppearsOnce) {
  const auto& [method, to_file] = GetParam();
  const auto r = run_scenario("printed_before_pool", {.method = method, .stdout_to_file = to_file});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("printf before the pool\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("cout before the pool\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("sum 9\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("between\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("after the pool\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("task says 3\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("task says 1\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("task says 2\n"), 1u) << r.describe();
  EXPECT_EQ(r.err.find("stderr before the pool"), r.err.rfind("stderr before the pool"))
      << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Output, PrintedBeforeAProcessAppearsOnce) {
  const auto& [method, to_file] = GetParam();
  const auto r =
      run_scenario("printed_before_process", {.method = method, .stdout_to_file = to_file});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("printf before the process\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("cout before the process\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child says hi\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("exit code 0\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(RealProgram, Output,
                         ::testing::Combine(::testing::Values("fork", "forkserver", "spawn"),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) ? "_file" : "_pipe");
                         });
}  // namespace
