// The process pool's dispatch policy (dispatch_policy.hpp): how many tasks each worker's pipe
// holds, from the measured task times. Pure functions: no pool, no process.
#include "mproc/pool/detail/dispatch_policy.hpp"

#include <gtest/gtest.h>

namespace {

using namespace mproc::detail;

TEST(PoolDispatch, AveragesStartAtTheFirstSample) {
  EXPECT_EQ(worker_average_ns(0, 1000), 1000);
  EXPECT_EQ(pool_average_ns(0, 1000), 1000);
}

TEST(PoolDispatch, WorkerAverageFollowsFasterThanThePools) {
  EXPECT_DOUBLE_EQ(worker_average_ns(1000, 2000), 1200);
  EXPECT_DOUBLE_EQ(pool_average_ns(1000, 2000), 1100);
}

TEST(PoolDispatch, OneTaskWhileNothingIsKnown) {
  EXPECT_EQ(pipeline_depth(0, 0), 1u);
}

TEST(PoolDispatch, WorkersOwnAverageWinsOverThePools) {
  // 250 us budget / 10 us = 25 tasks; the pool's 1 us would give 250.
  EXPECT_EQ(pipeline_depth(10'000, 1'000), 25u);
  // A new worker (no average yet) takes the pool's.
  EXPECT_EQ(pipeline_depth(0, 10'000), 25u);
}

TEST(PoolDispatch, ShortTasksFillTheBudgetUpToTheCap) {
  EXPECT_EQ(pipeline_depth(100, 0), kMaxDepth);  // 2500 would fit
  EXPECT_EQ(pipeline_depth(1'000, 0), 250u);
}

TEST(PoolDispatch, MediumTasksKeepTwoInThePipe) {
  // Longer than the budget but pipelined: the next one hides the round trip.
  EXPECT_EQ(pipeline_depth(kPipelineBudgetNs, 0), kMinDepth);
  EXPECT_EQ(pipeline_depth(1'000'000, 0), kMinDepth);
}

TEST(PoolDispatch, LongTasksGoOneAtATime) {
  EXPECT_EQ(pipeline_depth(kNoPipelineNs, 0), 1u);
  EXPECT_EQ(pipeline_depth(60e9, 0), 1u);
}

TEST(PoolDispatch, CapacityIsTheDepthLessWhatTheWorkerHolds) {
  WorkerLoad w{true, 10'000, 0, 0};
  EXPECT_EQ(capacity(w, 0, 0), 25u);
  w.held = 20;
  EXPECT_EQ(capacity(w, 0, 0), 5u);
  w.held = 25;
  EXPECT_EQ(capacity(w, 0, 0), 0u);
  w.held = 30;  // the depth shrank below what it holds (tasks got longer)
  EXPECT_EQ(capacity(w, 0, 0), 0u);
}

TEST(PoolDispatch, AWorkerThatTakesNoTasksHasNoCapacity) {
  // Retiring, hung up, being stopped (time limit, cancel) or faulty.
  EXPECT_EQ(capacity({false, 10'000, 0, 0}, 10'000, 0), 0u);
}

TEST(PoolDispatch, MaxtasksperchildCapsWhatAWorkerIsGiven) {
  EXPECT_EQ(capacity({true, 1'000, 0, 0}, 0, 10), 10u);  // depth 250, quota 10
  EXPECT_EQ(capacity({true, 1'000, 3, 7}, 0, 10), 3u);
  EXPECT_EQ(capacity({true, 1'000, 3, 10}, 0, 10), 0u);
  EXPECT_EQ(capacity({true, 0, 0, 0}, 0, 10), 1u);  // unknown length: still one at a time
}

TEST(PoolDispatch, QuotaSpentOnlyWithAQuota) {
  EXPECT_FALSE(quota_spent(1'000'000, 0));
  EXPECT_FALSE(quota_spent(9, 10));
  EXPECT_TRUE(quota_spent(10, 10));
}

TEST(PoolDispatch, FairShareSpreadsABurstOverTheWorkersWithRoom) {
  EXPECT_EQ(fair_share(10, 4), 3u);
  EXPECT_EQ(fair_share(8, 4), 2u);
  EXPECT_EQ(fair_share(1, 4), 1u);
  EXPECT_EQ(fair_share(5, 0), 0u);
  EXPECT_EQ(tasks_to_take(2, 3, 10), 2u);   // its room
  EXPECT_EQ(tasks_to_take(25, 3, 10), 3u);  // its share
  EXPECT_EQ(tasks_to_take(25, 3, 1), 1u);   // what is left
}

TEST(PoolDispatch, RoundsOfFairSharesPlaceEveryTaskThereIsRoomFor) {
  // The coordinator's loop, over capacities alone: 3 workers with room 1, 5 and 100.
  std::size_t room[] = {1, 5, 100};
  std::size_t taken[] = {0, 0, 0};
  std::size_t waiting = 30;
  for (bool progress = true; progress && waiting > 0;) {
    progress = false;
    std::size_t with_room = 0;
    for (std::size_t r : room) with_room += r > 0 ? 1 : 0;
    if (with_room == 0) break;
    const std::size_t share = fair_share(waiting, with_room);
    for (int i = 0; i < 3 && waiting > 0; ++i) {
      const std::size_t take = tasks_to_take(room[i], share, waiting);
      room[i] -= take;
      taken[i] += take;
      waiting -= take;
      progress |= take > 0;
    }
  }
  EXPECT_EQ(waiting, 0u);
  EXPECT_EQ(taken[0], 1u);
  EXPECT_EQ(taken[1], 5u);
  EXPECT_EQ(taken[2], 24u);
}

TEST(PoolDispatch, ARetiringWorkersSuccessorStartsWhenItIsHandedItsLastTask) {
  // 2 processes, both handed their last task: two successors, while those tasks run.
  EXPECT_EQ(workers_to_start({0, 2}, 2), 2u);
  // One retired, the other still takes tasks.
  EXPECT_EQ(workers_to_start({1, 1}, 2), 1u);
  // Enough take tasks.
  EXPECT_EQ(workers_to_start({2, 0}, 2), 0u);
  EXPECT_EQ(workers_to_start({3, 0}, 2), 0u);
}

TEST(PoolDispatch, SuccessorsStayOneGenerationAhead) {
  // The successors were handed their whole quota too: nothing more until a result is in.
  EXPECT_EQ(workers_to_start({0, 4}, 2), 0u);
  EXPECT_EQ(workers_to_start({0, 5}, 2), 0u);
  EXPECT_EQ(workers_to_start({1, 3}, 2), 0u);
  EXPECT_EQ(workers_to_start({0, 3}, 2), 1u);
}

TEST(PoolDispatch, ASuccessorDoesNotWaitForItsPredecessorsExit) {
  // 4 draining; one's last result is read: it leaves the counts (its exit and reap are not
  // waited for) and its successor starts.
  EXPECT_EQ(workers_to_start({0, 3}, 2), 1u);
  // maxtasksperchild=2 with one process, sequential calls: the first worker is handed its
  // second task (a successor starts), its result is read (the successor is there already).
  EXPECT_EQ(workers_to_start({0, 1}, 1), 1u);
  EXPECT_EQ(workers_to_start({1, 0}, 1), 0u);
}

TEST(PoolDispatch, DeadWorkersAreReplaced) {
  // Without a quota nobody drains: a worker that died is replaced, up to the pool's size.
  EXPECT_EQ(workers_to_start({0, 0}, 4), 4u);
  EXPECT_EQ(workers_to_start({3, 0}, 4), 1u);
}

}  // namespace
