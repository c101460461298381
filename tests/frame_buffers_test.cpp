// The large frame buffers a process keeps for reuse (frame_buffers.hpp). No processes.
#include <gtest/gtest.h>

#include <mproc/pool/detail/frame_buffers.hpp>

namespace d = mproc::detail;

namespace {

constexpr std::size_t kBig = d::FrameBuffers::kMin * 2;

// Keeps a buffer of kBig bytes and returns its storage's address.
const char* keep_one() {
  d::Bytes b = d::frame_buffer(kBig);
  b.push_back('x');
  const char* at = b.data();
  d::recycle_frame_buffer(b);
  return at;
}

}  // namespace

TEST(FrameBuffers, AKeptBufferIsHandedOutAgainEmpty) {
  d::release_frame_buffers();
  const char* at = keep_one();
  d::Bytes again = d::frame_buffer(kBig);
  EXPECT_EQ(again.data(), at) << "the kept buffer was not reused";
  EXPECT_TRUE(again.empty());
  EXPECT_GE(again.capacity(), kBig);
}

TEST(FrameBuffers, SmallAndHugeBuffersAreNotKept) {
  d::release_frame_buffers();
  d::Bytes small;
  small.reserve(d::FrameBuffers::kMin / 2);
  d::recycle_frame_buffer(small);
  EXPECT_EQ(small.capacity(), d::FrameBuffers::kMin / 2) << "a small buffer was taken";
  d::Bytes huge;
  huge.reserve(d::FrameBuffers::kMaxKept + 4096);
  d::recycle_frame_buffer(huge);
  EXPECT_GE(huge.capacity(), d::FrameBuffers::kMaxKept) << "a huge buffer was taken";
}

TEST(FrameBuffers, ReleaseFreesWhatIsKeptSoTheNextBufferIsNew) {
  d::release_frame_buffers();
  keep_one();
  d::release_frame_buffers();
  // Every slot is free again: a buffer recycled now is taken, and handed out next.
  d::Bytes fresh = d::frame_buffer(kBig);
  EXPECT_TRUE(fresh.empty());
  fresh.push_back('y');
  const char* at = fresh.data();
  d::recycle_frame_buffer(fresh);
  EXPECT_EQ(fresh.capacity(), 0u) << "no slot was free after release_frame_buffers()";
  EXPECT_EQ(d::frame_buffer(kBig).data(), at);
}
