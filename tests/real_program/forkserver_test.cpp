// A fork server that dies is replaced on next use (issue 15, item 7): every later forkserver
// pool failed with "sendmsg: Broken pipe". Scenarios: scenarios_forkserver.cpp.
#include <gtest/gtest.h>

#include "run_scenario.hpp"

namespace {
using mproc_test::run_scenario;

TEST(ForkServer, KilledServerIsReplacedForTheNextPool) {
  const auto r = run_scenario("forkserver_killed_between_pools", {.method = "forkserver"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("first 16\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("second 16\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("new server yes\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("third 16\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}

TEST(ForkServer, ServerKilledWhileMakingAPoolIsReplaced) {
  // Longer than the scenario's own 20 s bound on seeing the request wait, so that a miss is
  // reported by the scenario (naming what each thread was doing), not as a timeout.
  const auto r =
      run_scenario("forkserver_killed_during_request", {.method = "forkserver", .deadline_s = 40});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.count("first 16\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("killed midway yes\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("second 16\n"), 1u) << r.describe();
  EXPECT_EQ(r.count("third 16\n"), 1u) << r.describe();
  EXPECT_TRUE(r.leftovers.empty()) << r.describe();
}
}  // namespace
