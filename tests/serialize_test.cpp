#include <gtest/gtest.h>

#include <mproc/serialize/frame.hpp>

TEST(Frame, RejectsOversized) {
  mproc::detail::Bytes b;
  auto at = mproc::detail::begin_frame(b);
  b.resize(b.size() + 100);
  mproc::detail::finish_frame(b, at, mproc::detail::FrameKind::kTask, 1, 0);
  EXPECT_THROW(mproc::detail::parse_frame_header(b, 10), mproc::SerializationError);
}
