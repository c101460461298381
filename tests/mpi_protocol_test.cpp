// The MPI engine's decisions and message codec, without processes or MPI: where rank 0 sends
// the next task (rank_dispatch.hpp) and how control and task messages are framed
// (mpi_rank.hpp). The ranks themselves are exercised by mpi_test under mpirun.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "mproc/pool/detail/rank_dispatch.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "mproc/worker/detail/mpi_rank.hpp"

namespace {

using mproc::detail::kNoRank;
using mproc::detail::pick_rank;
using mproc::detail::rank_window;
namespace mr = mproc::detail::mpi_rank;

TEST(RankDispatch, WindowIsTwoTasksPerWorkerAndAtLeastFour) {
  EXPECT_EQ(rank_window(0), 4u);  // not known yet, or the rank's pool failed: it still answers
  EXPECT_EQ(rank_window(1), 4u);
  EXPECT_EQ(rank_window(2), 4u);
  EXPECT_EQ(rank_window(3), 6u);
  EXPECT_EQ(rank_window(64), 128u);
}

TEST(RankDispatch, TheRankWithTheMostFreeRoomGetsTheTask) {
  const std::vector<std::size_t> windows{4, 16, 8};
  EXPECT_EQ(pick_rank(std::vector<std::size_t>{0, 0, 0}, windows), 1u);
  EXPECT_EQ(pick_rank(std::vector<std::size_t>{0, 13, 0}, windows), 2u);  // room 4, 3, 8
  EXPECT_EQ(pick_rank(std::vector<std::size_t>{1, 13, 5}, windows), 0u);  // room 3, 3, 3: first
  EXPECT_EQ(pick_rank(std::vector<std::size_t>{4, 16, 8}, windows), kNoRank);
  EXPECT_EQ(pick_rank(std::vector<std::size_t>{9, 20, 8}, windows), kNoRank);  // over: no room
  EXPECT_EQ(pick_rank(std::vector<std::size_t>{}, std::vector<std::size_t>{}), kNoRank);
}

TEST(RankDispatch, ABurstSpreadsInProportionToFreeWorkers) {
  // Ranks of 1, 2 and 4 workers, all idle: 28 tasks fill their windows (4, 4, 8) in
  // proportion, then none is placed.
  std::vector<std::size_t> in_flight{0, 0, 0};
  const std::vector<std::size_t> windows{rank_window(1), rank_window(2), rank_window(4)};
  std::vector<std::size_t> placed(3, 0);
  for (int i = 0; i < 28; ++i) {
    const std::size_t r = pick_rank(in_flight, windows);
    if (r == kNoRank) break;
    ++in_flight[r];
    ++placed[r];
  }
  EXPECT_EQ(placed, (std::vector<std::size_t>{4, 4, 8}));
}

TEST(MpiProtocol, ControlMessagesRoundTrip) {
  for (auto kind : {mr::ControlKind::kCancel, mr::ControlKind::kEnd, mr::ControlKind::kOpened,
                    mr::ControlKind::kEnded}) {
    const mproc::detail::Bytes m = mr::encode_control(mr::Control{kind, 4711, 99});
    ASSERT_EQ(m.size(), sizeof(mr::Control));
    const auto p = mr::parse_control(m);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->control.kind, kind);
    EXPECT_EQ(p->control.pool_tag, 4711);
    EXPECT_EQ(p->control.value, 99u);
    EXPECT_TRUE(p->init_frame.empty());
  }
}

TEST(MpiProtocol, OpenCarriesTheConfigAndTheInitializerFrame) {
  mr::RankPoolConfig c;
  c.workers = 3;
  c.maxtasksperchild = 1;
  c.max_retries = 2;
  c.task_timeout_ns = 5'000'000;
  c.start_method = 1;
  const std::string init = "an initializer frame";
  const mproc::detail::Bytes m = mr::encode_control(mr::Control{mr::ControlKind::kOpen, 12, 0}, &c,
                                                    std::span(init.data(), init.size()));
  const auto p = mr::parse_control(m);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->control.kind, mr::ControlKind::kOpen);
  EXPECT_EQ(p->config.workers, 3u);
  EXPECT_EQ(p->config.maxtasksperchild, 1u);
  EXPECT_EQ(p->config.max_retries, 2u);
  EXPECT_EQ(p->config.task_timeout_ns, 5'000'000);
  EXPECT_EQ(p->config.start_method, 1);
  EXPECT_EQ(std::string(p->init_frame.begin(), p->init_frame.end()), init);
  // Without an initializer the open message ends with the config.
  const auto bare =
      mr::parse_control(mr::encode_control(mr::Control{mr::ControlKind::kOpen, 12, 0}, &c));
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->init_frame.empty());
}

TEST(MpiProtocol, MalformedControlMessagesAreRefused) {
  mproc::detail::Bytes m = mr::encode_control(mr::Control{mr::ControlKind::kCancel, 3, 1});
  EXPECT_FALSE(mr::parse_control(std::span(m.data(), m.size() - 1)));  // short
  m.push_back('x');
  EXPECT_FALSE(mr::parse_control(m));  // a cancel with trailing bytes
  mproc::detail::Bytes bad = mr::encode_control(mr::Control{mr::ControlKind::kEnd, 3, 0});
  const std::uint32_t kinds[] = {0, 6, 0xffffffffu};
  for (std::uint32_t k : kinds) {
    std::memcpy(bad.data(), &k, sizeof k);
    EXPECT_FALSE(mr::parse_control(bad)) << k;
  }
  // An open message too short for its config.
  const mproc::detail::Bytes open = mr::encode_control(mr::Control{mr::ControlKind::kOpen, 3, 0});
  EXPECT_FALSE(mr::parse_control(open));
}

TEST(MpiProtocol, TaskLimitsTravelAfterTheFrameAndComeOffIntact) {
  mproc::detail::Bytes frame;
  const std::size_t at = mproc::detail::begin_frame(frame);
  frame.insert(frame.end(), {'p', 'a', 'y'});
  mproc::detail::finish_frame(frame, at, mproc::detail::FrameKind::kTask, 77, 0);
  const mproc::detail::Bytes original = frame;
  mr::append_limits(frame, {1'500'000'000, 200'000'000});
  EXPECT_EQ(frame.size(), original.size() + sizeof(mr::TaskLimits));
  const auto l = mr::take_limits(frame);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->hard_ns, 1'500'000'000);
  EXPECT_EQ(l->soft_ns, 200'000'000);
  EXPECT_EQ(frame, original);
  EXPECT_EQ(mproc::detail::frame_task_id(frame), 77u);
  mproc::detail::Bytes tiny(sizeof(mr::TaskLimits) + 3);
  EXPECT_FALSE(mr::take_limits(tiny));  // no room for a frame header
}

}  // namespace
