// What happens to a dead worker's tasks (death_accounting.hpp). Pure functions: the cases the
// chaos tests reach only by luck are set up here directly.
#include "mproc/pool/detail/death_accounting.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

namespace {

using namespace mproc::detail;

WorkerEnd with_progress(std::size_t held, std::uint64_t started, std::uint64_t finished,
                        std::uint64_t received) {
  WorkerEnd w;
  w.held = held;
  w.head_sent = true;
  w.has_progress = true;
  w.started = started;
  w.finished = finished;
  w.received = received;
  return w;
}

TEST(PoolDeathAccounting, IdleWorkerHoldsNothing) {
  const HeldTasks h = split_held_tasks(with_progress(0, 5, 5, 5));
  EXPECT_EQ(h.ran_unsent, 0u);
  EXPECT_FALSE(h.culprit);
}

TEST(PoolDeathAccounting, DiesWithSeveralInFlightOneRunning) {
  // Received 3 results; it finished 5 (2 results died with it), started a 6th; 10 held.
  const HeldTasks h = split_held_tasks(with_progress(10, 6, 5, 3));
  EXPECT_EQ(h.ran_unsent, 2u);
  EXPECT_TRUE(h.culprit);  // the 3rd held: started, not finished
}

TEST(PoolDeathAccounting, StartedButNotFinishedIsTheCulprit) {
  const HeldTasks h = split_held_tasks(with_progress(4, 1, 0, 0));
  EXPECT_EQ(h.ran_unsent, 0u);
  EXPECT_TRUE(h.culprit);
}

TEST(PoolDeathAccounting, DiedBetweenTasksBlamesNone) {
  // Everything it started finished and was received: the 4 held never started.
  const HeldTasks h = split_held_tasks(with_progress(4, 7, 7, 7));
  EXPECT_EQ(h.ran_unsent, 0u);
  EXPECT_FALSE(h.culprit);
}

TEST(PoolDeathAccounting, AllHeldRanNoneIsRunning) {
  const HeldTasks h = split_held_tasks(with_progress(2, 2, 2, 0));
  EXPECT_EQ(h.ran_unsent, 2u);
  EXPECT_FALSE(h.culprit);
}

TEST(PoolDeathAccounting, CountersNeverBlameMoreThanItHeld) {
  // Counters ahead of what it holds (a stale slot): bounded by the held tasks.
  const HeldTasks h = split_held_tasks(with_progress(2, 9, 9, 0));
  EXPECT_EQ(h.ran_unsent, 2u);
  EXPECT_FALSE(h.culprit);
}

TEST(PoolDeathAccounting, WithoutASlotTheSentHeadIsTheCulprit) {
  WorkerEnd w;
  w.held = 3;
  w.head_sent = true;
  EXPECT_TRUE(split_held_tasks(w).culprit);
  w.head_sent = false;  // nothing reached it
  EXPECT_FALSE(split_held_tasks(w).culprit);
}

TEST(PoolDeathAccounting, WithoutASlotARetiringWorkerStartedNothingMore) {
  // It sent kRetiring (over its memory cap): nothing behind its last result started.
  WorkerEnd w;
  w.held = 3;
  w.head_sent = true;
  w.announced_retire = true;
  EXPECT_FALSE(split_held_tasks(w).culprit);
}

TEST(PoolDeathAccounting, WithoutASlotDeathInTheInitializerBlamesNoTask) {
  WorkerEnd w;
  w.held = 3;
  w.head_sent = true;
  w.init_acked = false;
  EXPECT_FALSE(split_held_tasks(w).culprit);
}

TEST(PoolDeathAccounting, ProtocolFaultBlamesTheFirstTask) {
  WorkerEnd w = with_progress(3, 3, 2, 0);  // counters would say 2 ran
  w.protocol_fault = true;
  const HeldTasks h = split_held_tasks(w);
  EXPECT_EQ(h.ran_unsent, 0u);
  EXPECT_TRUE(h.culprit);
}

TEST(PoolDeathAccounting, CulpritCancelledByTheUser) {
  EXPECT_EQ(culprit_fate({7, 1}, {7, 0, false}, 5, false), CulpritFate::kCancelled);
}

TEST(PoolDeathAccounting, CulpritTimedOut) {
  EXPECT_EQ(culprit_fate({7, 1}, {0, 7, false}, 5, false), CulpritFate::kTimedOut);
  // Another task's stop does not make this one time out.
  EXPECT_EQ(culprit_fate({7, 1}, {0, 8, false}, 5, false), CulpritFate::kRetry);
}

TEST(PoolDeathAccounting, CulpritOfAProtocolFaultGetsTheFault) {
  EXPECT_EQ(culprit_fate({7, 1}, {0, 0, true}, 5, false), CulpritFate::kProtocolFault);
}

TEST(PoolDeathAccounting, RetriesLeftVersusExhausted) {
  EXPECT_EQ(culprit_fate({7, 1}, {}, 2, false), CulpritFate::kRetry);
  EXPECT_EQ(culprit_fate({7, 2}, {}, 2, false), CulpritFate::kRetry);
  EXPECT_EQ(culprit_fate({7, 3}, {}, 2, false), CulpritFate::kLost);
  EXPECT_EQ(culprit_fate({7, 1}, {}, 0, false), CulpritFate::kLost);  // the default: no retry
}

TEST(PoolDeathAccounting, ABrokenPoolRetriesNothing) {
  EXPECT_EQ(culprit_fate({7, 1}, {}, 5, true), CulpritFate::kLost);
}

TEST(PoolDeathAccounting, CancelledBeforeStartIsNotRequeued) {
  const StopReasons why{9, 0, false};
  EXPECT_TRUE(cancelled_before_start(9, why));
  EXPECT_FALSE(cancelled_before_start(10, why));
}

TEST(PoolDeathAccounting, ThreeInitializerCrashesInARowBreakThePool) {
  unsigned n = 0;
  WorkerEnd crashed;
  crashed.init_acked = false;
  EXPECT_FALSE(count_init_death(n, crashed, false));
  EXPECT_FALSE(count_init_death(n, crashed, false));
  WorkerEnd fine;  // one got through: the count starts again
  EXPECT_FALSE(count_init_death(n, fine, false));
  EXPECT_EQ(n, 0u);
  EXPECT_FALSE(count_init_death(n, crashed, false));
  EXPECT_FALSE(count_init_death(n, crashed, false));
  EXPECT_TRUE(count_init_death(n, crashed, false));
}

TEST(PoolDeathAccounting, InitializerDeathsAtShutdownOrByFaultDoNotCount) {
  unsigned n = 2;
  WorkerEnd w;
  w.init_acked = false;
  EXPECT_FALSE(count_init_death(n, w, /*shutting_down=*/true));
  w.protocol_fault = true;
  EXPECT_FALSE(count_init_death(n, w, false));
  EXPECT_EQ(n, 2u);  // and they do not reset it either
}

TEST(PoolDeathAccounting, IdleDeaths) {
  // Exit code 0: maxtasksperchild reached, the memory cap, EOF.
  EXPECT_FALSE(idle_death_is_abnormal(W_EXITCODE(0, 0), false));
  EXPECT_TRUE(idle_death_is_abnormal(W_EXITCODE(3, 0), false));
  EXPECT_TRUE(idle_death_is_abnormal(W_EXITCODE(0, SIGKILL), false));
  EXPECT_FALSE(idle_death_is_abnormal(W_EXITCODE(0, SIGKILL), true));  // terminate()
}

TEST(PoolDeathAccounting, StatusInWords) {
  EXPECT_EQ(describe_status(W_EXITCODE(0, SIGKILL)), "was killed by SIGKILL");
  EXPECT_EQ(describe_status(W_EXITCODE(3, 0)), "exited with code 3");
  EXPECT_EQ(exit_code(W_EXITCODE(3, 0)), 3);
  EXPECT_EQ(exit_code(W_EXITCODE(0, SIGSEGV)), -1);
  EXPECT_EQ(exit_signal(W_EXITCODE(0, SIGSEGV)), SIGSEGV);
  EXPECT_EQ(exit_signal(W_EXITCODE(0, 0)), 0);
}

TEST(PoolDeathAccounting, Messages) {
  const DeadWorker w{"ForkPoolWorker-3", 42, W_EXITCODE(0, SIGKILL)};
  EXPECT_EQ(ran_unsent_message(w, 5),
            "worker ForkPoolWorker-3 (pid 42) was killed by SIGKILL after running task 5 but "
            "before sending its result");
  const std::string no_stack =
      "; its stack is not available: mproc captures a task's stack when it throws, not when its "
      "worker dies on a signal";
  EXPECT_EQ(
      lost_message(w, {6, 1}),
      "worker ForkPoolWorker-3 (pid 42) was killed by SIGKILL while running task 6" + no_stack);
  EXPECT_EQ(lost_message(w, {6, 3}),
            "worker ForkPoolWorker-3 (pid 42) was killed by SIGKILL while running task 6 (3 "
            "attempts)" +
                no_stack);
  // exit() inside a task: no signal, so nothing about a stack.
  const DeadWorker exited{"ForkPoolWorker-3", 42, W_EXITCODE(3, 0)};
  EXPECT_EQ(lost_message(exited, {6, 1}),
            "worker ForkPoolWorker-3 (pid 42) exited with code 3 while running task 6");
  EXPECT_EQ(timed_out_message(w, 6, 250),
            "task 6 exceeded its time limit of 250 ms; worker ForkPoolWorker-3 (pid 42) was "
            "stopped");
  EXPECT_EQ(init_death_message(w),
            "worker ForkPoolWorker-3 was killed by SIGKILL while running the pool's initializer "
            "(3 times in a row)");
}

// ---- why a worker ended (exit_cause) --------------------------------------------------------

WorkerEnd ended(int status) {
  WorkerEnd w;
  w.status = status;
  return w;
}

TEST(PoolDeathAccounting, ExitCauseCrashByDefault) {
  EXPECT_EQ(exit_cause(ended(W_EXITCODE(0, SIGSEGV))), mproc::WorkerExitCause::kCrash);
  EXPECT_EQ(exit_cause(ended(W_EXITCODE(3, 0))), mproc::WorkerExitCause::kCrash);  // exit(3)
  // A clean exit the pool did not ask for (exit(0) inside a task) is a crash too.
  EXPECT_EQ(exit_cause(ended(W_EXITCODE(0, 0))), mproc::WorkerExitCause::kCrash);
}

TEST(PoolDeathAccounting, ExitCauseMaxTasksOnlyWhenCleanAfterItsQuota) {
  WorkerEnd w = ended(W_EXITCODE(0, 0));
  w.quota_spent = true;
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kMaxTasks);
  w.status = W_EXITCODE(0, SIGKILL);  // crashed in its last task
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kCrash);
}

TEST(PoolDeathAccounting, ExitCauseWhatThePoolDidComesFirst) {
  WorkerEnd w = ended(W_EXITCODE(0, SIGTERM));
  w.quota_spent = true;
  w.timed_out = true;
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kTimeout);
  w.timed_out = false;
  w.cancelled = true;
  w.status = W_EXITCODE(0, SIGKILL);
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kCancel);
  w.protocol_fault = true;
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kProtocolFault);
  w.pool_stop = WorkerEnd::PoolStop::kTerminate;
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kTerminate);
  w.pool_stop = WorkerEnd::PoolStop::kClose;
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kClose);
}

TEST(PoolDeathAccounting, ExitCauseInitializerAndMemoryCap) {
  WorkerEnd w = ended(W_EXITCODE(1, 0));
  w.init_failed = true;  // it answered the init frame with an exception
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kInitializer);
  w = ended(W_EXITCODE(0, SIGSEGV));
  w.init_acked = false;  // died inside the initializer
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kInitializer);
  w = ended(W_EXITCODE(0, 0));
  w.announced_retire = true;
  w.quota_spent = true;  // over its memory cap after its last task: the cap is the reason
  EXPECT_EQ(exit_cause(w), mproc::WorkerExitCause::kMemoryCap);
}

}  // namespace
