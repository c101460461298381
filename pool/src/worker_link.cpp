#include "worker_link.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

namespace mproc::detail {
namespace {
constexpr std::size_t kMaxIov = 64;
}  // namespace

WorkerLink::Write WorkerLink::write_some() {
  for (;;) {
    iovec iov[kMaxIov];
    std::size_t n = 0;
    if (preamble_off_ < preamble_.size()) {
      iov[n++] = {preamble_.data() + preamble_off_, preamble_.size() - preamble_off_};
    } else if (write_off_ > 0) {  // finish a partly written frame before any control frame
      const std::span<const char> f = wire_bytes(write_idx_);
      iov[n++] = {const_cast<char*>(f.data()) + write_off_, f.size() - write_off_};
    } else {
      if (ctrl_off_ < ctrl_.size()) {
        iov[n++] = {ctrl_.data() + ctrl_off_, ctrl_.size() - ctrl_off_};
      }
      for (std::size_t i = write_idx_; i < held_.size() && n < kMaxIov; ++i) {
        const std::span<const char> f = wire_bytes(i);
        iov[n++] = {const_cast<char*>(f.data()), f.size()};
      }
    }
    if (n == 0) return Write::kDone;
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    ssize_t sent = ::sendmsg(fd(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Write::kBlocked;
      return Write::kBroken;
    }
    auto left = static_cast<std::size_t>(sent);
    if (preamble_off_ < preamble_.size()) {
      const std::size_t k = std::min(left, preamble_.size() - preamble_off_);
      preamble_off_ += k;
      left -= k;
    } else if (write_off_ == 0 && ctrl_off_ < ctrl_.size()) {
      const std::size_t k = std::min(left, ctrl_.size() - ctrl_off_);
      ctrl_off_ += k;
      left -= k;
      if (ctrl_off_ == ctrl_.size()) {
        ctrl_.clear();
        ctrl_off_ = 0;
      }
    }
    while (left > 0) {
      const std::size_t rest = wire_bytes(write_idx_).size() - write_off_;
      if (left >= rest) {
        left -= rest;
        ++write_idx_;
        write_off_ = 0;
      } else {
        write_off_ += left;
        left = 0;
      }
    }
  }
}

WorkerLink::Fill WorkerLink::fill() {
  release_opened();
  const ssize_t n = reader_.read_from(fd(), MSG_DONTWAIT);
  if (n > 0) return Fill::kData;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Fill::kWouldBlock;
  return Fill::kEnded;  // EOF, or an error (ENOMEM growing the buffer): the worker is done
}

}  // namespace mproc::detail

namespace mproc::detail {

void WorkerLink::open_shared(Frame& f, std::size_t max_frame_bytes) {
  if (!payloads_) throw SerializationError("corrupt frame from worker: shared payload unasked");
  const PayloadChannel::Opened o = payloads_->open(f.payload, max_frame_bytes);
  opened_ = o.buffer;
  f.header.aux &= ~kSharedPayloadFlag;
  f.header.length = static_cast<std::uint32_t>(o.payload.size());
  f.payload = o.payload;
}

}  // namespace mproc::detail
