// The direct-call handshake without processes: the mailbox word (direct_mailbox.hpp) shared by
// a caller, a worker and the I/O thread, and the lane's gate (direct_lane.hpp) shared by
// callers and the I/O thread. Races are run with real threads: of a worker's reply and the I/O
// thread's verdict exactly one wins, and the caller sees that one.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "mproc/pool/detail/direct_lane.hpp"
#include "mproc/worker/detail/direct_mailbox.hpp"

namespace d = mproc::detail;

namespace {

std::uint32_t state(d::DirectMailbox& box) {
  return d::mail_word(box).load();
}

std::unique_ptr<d::DirectMailbox> fresh_box() {
  auto box = std::make_unique<d::DirectMailbox>();
  box->word = d::kMailIdle;
  box->length = 0;
  box->started = 0;
  box->owner = 0;
  return box;
}

}  // namespace

TEST(DirectMailbox, AReplyThatFitsIsPublishedWithItsBytes) {
  auto box = fresh_box();
  ASSERT_TRUE(d::mail_post(*box));
  const std::string frame(100, 'r');
  const d::Delivered got = d::mail_reply(*box, frame);
  EXPECT_TRUE(got.fits);
  EXPECT_FALSE(got.wake);  // the caller was polling, not asleep
  EXPECT_EQ(state(*box), d::kMailReplied);
  EXPECT_EQ(std::string(box->reply, box->length), frame);
}

TEST(DirectMailbox, AReplyTooLargeIsLeftForTheSocket) {
  auto box = fresh_box();
  ASSERT_TRUE(d::mail_post(*box));
  const std::string exact(d::DirectMailbox::kReplyBytes, 'x');
  const std::string over(d::DirectMailbox::kReplyBytes + 1, 'x');
  EXPECT_FALSE(d::mail_reply(*box, over).fits);
  EXPECT_EQ(state(*box), d::kMailPosted);  // still waiting: the I/O thread passes it on
  EXPECT_TRUE(d::mail_reply(*box, exact).fits);
  EXPECT_EQ(box->length, d::DirectMailbox::kReplyBytes);
}

TEST(DirectMailbox, ASleepingCallerIsWokenByWhoeverCompletes) {
  auto box = fresh_box();
  ASSERT_TRUE(d::mail_post(*box));
  ASSERT_TRUE(d::mail_cas(*box, d::kMailPosted, d::kMailPostedAsleep));
  EXPECT_TRUE(d::mail_reply(*box, std::string("ok")).wake);

  auto other = fresh_box();
  ASSERT_TRUE(d::mail_post(*other));
  ASSERT_TRUE(d::mail_cas(*other, d::kMailPosted, d::kMailPostedAsleep));
  const d::Settled s = d::mail_settle(*other, d::kMailLost);
  EXPECT_TRUE(s.settled);
  EXPECT_TRUE(s.wake);
}

TEST(DirectMailbox, ASettledIdleMailboxRefusesThePost) {
  // The worker died between the caller's claim and its post: the call goes to the queue.
  auto box = fresh_box();
  EXPECT_TRUE(d::mail_settle(*box, d::kMailLost).settled);
  EXPECT_FALSE(d::mail_post(*box));
  d::mail_reset(*box);
  EXPECT_TRUE(d::mail_post(*box));
}

TEST(DirectMailbox, WithdrawOnlyUndoesAPostNobodyAnswered) {
  auto box = fresh_box();
  ASSERT_TRUE(d::mail_post(*box));
  EXPECT_TRUE(d::mail_withdraw(*box));
  EXPECT_EQ(state(*box), d::kMailIdle);
  ASSERT_TRUE(d::mail_post(*box));
  ASSERT_TRUE(d::mail_reply(*box, std::string("done")).fits);
  EXPECT_FALSE(d::mail_withdraw(*box));  // the outcome is there: it must be taken
  EXPECT_EQ(state(*box), d::kMailReplied);
}

TEST(DirectMailbox, AReplyAfterTheVerdictIsDropped) {
  auto box = fresh_box();
  ASSERT_TRUE(d::mail_post(*box));
  ASSERT_TRUE(d::mail_settle(*box, d::kMailLost).settled);
  const d::Delivered late = d::mail_reply(*box, std::string("late"));
  EXPECT_TRUE(late.fits);
  EXPECT_FALSE(late.wake);
  EXPECT_EQ(state(*box), d::kMailLost);
  EXPECT_FALSE(d::mail_settle(*box, d::kMailReplyElsewhere).settled);  // decided once
}

TEST(DirectMailbox, ReplyAndVerdictRacingHaveExactlyOneWinner) {
  int replied = 0;
  int lost = 0;
  for (int round = 0; round < 500; ++round) {
    auto box = fresh_box();
    ASSERT_TRUE(d::mail_post(*box));
    std::atomic<bool> go{false};
    bool reply_won = false;
    bool verdict_won = false;
    std::thread worker([&] {
      while (!go.load()) {
      }
      const std::uint32_t before = d::mail_complete(*box, d::kMailReplied);
      reply_won = d::mail_pending(before);
    });
    std::thread io([&] {
      while (!go.load()) {
      }
      verdict_won = d::mail_settle(*box, d::kMailLost).settled;
    });
    go.store(true);
    worker.join();
    io.join();
    ASSERT_NE(reply_won, verdict_won) << "round " << round;
    ASSERT_EQ(state(*box), reply_won ? d::kMailReplied : d::kMailLost);
    (reply_won ? replied : lost) += 1;
  }
  EXPECT_EQ(replied + lost, 500);
}

TEST(DirectLane, OnlyAnOpenLaneCanBeClaimedAndByOneCallerAtATime) {
  d::DirectLane lane;
  EXPECT_FALSE(d::lane_claim(lane));  // shut: the I/O thread's
  lane.gate.store(d::DirectLane::kOpen);
  std::atomic<int> winners{0};
  std::thread a([&] { winners += d::lane_claim(lane) ? 1 : 0; });
  std::thread b([&] { winners += d::lane_claim(lane) ? 1 : 0; });
  a.join();
  b.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_TRUE(d::lane_lent(lane));
  EXPECT_EQ(d::lane_release(lane), d::LaneReturn::kReopened);
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kOpen);
}

TEST(DirectLane, TheIoThreadTakesBackAnOpenLaneAndWaitsForALentOne) {
  d::DirectLane lane;
  lane.gate.store(d::DirectLane::kOpen);
  EXPECT_TRUE(d::lane_reclaim(lane));
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kShut);
  EXPECT_FALSE(d::lane_claim(lane));

  lane.gate.store(d::DirectLane::kOpen);
  ASSERT_TRUE(d::lane_claim(lane));
  EXPECT_FALSE(d::lane_reclaim(lane));  // lent: marked wanted
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kLentWanted);
  EXPECT_FALSE(d::lane_reclaim(lane));
  EXPECT_EQ(d::lane_release(lane), d::LaneReturn::kWanted);  // the caller wakes dispatch
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kShut);
  EXPECT_TRUE(d::lane_reclaim(lane));
}

TEST(DirectLane, UnbindingALentLaneLeavesItsDescriptorToTheCaller) {
  d::DirectLane lane;
  lane.gate.store(d::DirectLane::kOpen);
  EXPECT_TRUE(d::lane_unbind(lane));  // not lent: the I/O thread closes the descriptor
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kShut);

  lane.gate.store(d::DirectLane::kOpen);
  ASSERT_TRUE(d::lane_claim(lane));
  EXPECT_FALSE(d::lane_unbind(lane));
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kLentLost);
  EXPECT_FALSE(d::lane_claim(lane));
  EXPECT_FALSE(d::lane_reclaim(lane));
  EXPECT_EQ(d::lane_release(lane), d::LaneReturn::kCloseFd);
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kLentLost);  // until the caller has closed it
  d::lane_shut(lane);
  EXPECT_EQ(lane.gate.load(), d::DirectLane::kShut);
}

TEST(DirectLane, ReleaseRacingReclaimNeverLosesTheWorker) {
  // Whatever the order, the lane ends either open (the caller's) or shut (the I/O thread's,
  // and the caller was told to wake dispatch): never lent with nobody holding it.
  for (int round = 0; round < 500; ++round) {
    d::DirectLane lane;
    lane.gate.store(d::DirectLane::kOpen);
    ASSERT_TRUE(d::lane_claim(lane));
    std::atomic<bool> go{false};
    d::LaneReturn ret{};
    bool reclaimed = false;
    std::thread caller([&] {
      while (!go.load()) {
      }
      ret = d::lane_release(lane);
    });
    std::thread io([&] {
      while (!go.load()) {
      }
      reclaimed = d::lane_reclaim(lane);
    });
    go.store(true);
    caller.join();
    io.join();
    const std::uint32_t g = lane.gate.load();
    if (reclaimed) {  // the caller gave it back first, then the I/O thread shut it
      ASSERT_EQ(ret, d::LaneReturn::kReopened);
      ASSERT_EQ(g, d::DirectLane::kShut);
    } else {  // the I/O thread marked it wanted; the caller handed it over
      ASSERT_EQ(ret, d::LaneReturn::kWanted);
      ASSERT_EQ(g, d::DirectLane::kShut);
    }
  }
}

TEST(DirectLane, PollingOnlyWhereTheCallerAndItsWorkerEachHaveACpu) {
  // Two CPUs, a lone caller: polling pays while nothing else is runnable.
  EXPECT_TRUE(d::polling_pays(1, false, 2, 2));   // the sampler alone
  EXPECT_TRUE(d::polling_pays(2, true, 2, 2));    // the two pollers themselves
  EXPECT_FALSE(d::polling_pays(2, false, 2, 2));  // one other busy thread: it would starve
  EXPECT_FALSE(d::polling_pays(3, true, 2, 2));
  // The pool's own parties count even when the machine is idle: two callers need four CPUs.
  EXPECT_FALSE(d::polling_pays(1, false, 4, 2));
  EXPECT_TRUE(d::polling_pays(1, false, 4, 8));
  EXPECT_TRUE(d::polling_pays(5, false, 2, 8));
  EXPECT_FALSE(d::polling_pays(8, false, 2, 8));
  EXPECT_FALSE(d::polling_pays(0, false, 0, 1));  // one CPU: never
}
