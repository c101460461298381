// An mproc object acts only in the process that made it
// (runtime/include/mproc/runtime/detail/owner.hpp): exit() in a task or a Process target, and the
// program's own fork(), leave the owner's pools, Manager and Processes untouched; using a copy is
// an error that names the owner.
#include <gtest/gtest.h>

#include <regex>

#include "run_scenario.hpp"

namespace {
using mproc_test::run_scenario;

class Owner : public ::testing::TestWithParam<std::string> {};

TEST_P(Owner, ExitInATaskIsAWorkerLossAndLeavesStaticsAlone) {
  const auto r = run_scenario("exit_in_task_with_static_manager_and_pools", {.method = GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("WorkerLostError:"), 1u) << r.describe();
  EXPECT_NE(r.out.find("exited with code 3"), std::string::npos) << r.describe();
  EXPECT_EQ(r.count("value 7\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("still works 25\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("static pool works 36\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Owner, ExitInAProcessLeavesStaticsAlone) {
  const auto r = run_scenario("exit_in_process_with_static_manager", {.method = GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("exit code 4\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("value 8\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("static pool works 36\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Owner, DestroyingCopiesInAForkChildLeavesTheParentsPoolWorking) {
  const auto r = run_scenario("pool_destroyed_in_fork_child", {.method = GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("warm 4 9\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child: exit 0\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("crash noticed\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("after 16 25\n"), 1u) << r.describe();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("terminate ms (\\d+)"))) << r.describe();
  // The defect made it the 5 s shutdown deadline; the bound scales with a sanitizer build.
  EXPECT_LT(std::stol(m[1]), 2000 * mproc_test::kSlowdown) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Owner, ExitInAForkChildLeavesTheParentsPoolWorking) {
  const auto r = run_scenario("exit_in_fork_child_with_live_pool", {.method = GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("child: exit 0\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("after 16\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST_P(Owner, UsingCopiesInAForkChildIsAnErrorNamingTheOwner) {
  const auto r = run_scenario("pool_used_in_fork_child", {.method = GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("child pool.apply: names the owner\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child pool.map: names the owner\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child thread_pool.apply: names the owner\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child process.join: names the owner\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child result.get: names the owner\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child: exit 5\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("parent 9 16 500\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(RealProgram, Owner, ::testing::Values("fork", "forkserver", "spawn"));
}  // namespace

namespace {
class OwnerNewPools : public ::testing::TestWithParam<std::string> {};

TEST_P(OwnerNewPools, AForkChildAndItsParentBothMakePools) {
  const auto r = run_scenario("new_pools_in_fork_child_and_parent", {.method = GetParam()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("child sum 55\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("child: exit 0\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("parent sum 55 9\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(RealProgram, OwnerNewPools,
                         ::testing::Values("fork", "forkserver", "spawn"));
}  // namespace
