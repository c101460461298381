// mproc/worker/detail/throw_capture.hpp — the stack of an exception at its throw, in a worker.
// Internal (namespace detail).
//
// By the time a task's exception reaches the worker's catch block, the frames that threw it are
// gone. So mproc interposes __cxa_throw (every `throw` expression of the program and of the
// shared libraries it loads goes through it; the real one is found with dlsym(RTLD_NEXT), which
// is libstdc++'s, or a sanitizer's interceptor that then calls it). While a ThrowCapture is
// live on a thread, each throw on that thread records its raw return addresses, from the
// thrower up to the frame that made the ThrowCapture; nothing is symbolized then. Otherwise a
// throw costs one thread-local load more, and code that does not throw costs nothing.
// traceback() symbolizes (libbacktrace, symbols.cpp) the record of the exception being
// handled, only when a task's exception escapes it.
//
// Needs a dynamically linked libstdc++ (or libc++abi): with a static one, its __cxa_throw and
// ours collide at link time.
//
// Thread safety: a ThrowCapture belongs to the thread that made it; it records only that
// thread's throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace mproc::detail {

class ThrowCapture {
 public:
  static constexpr std::size_t kMaxFrames = 64;
  static constexpr std::size_t kRecords = 4;  // throws caught inside the task may follow it

  // `outer_frame`: __builtin_frame_address(0) of the function making the capture; frames
  // above it (the worker loop) are left out. Captures on one thread nest.
  explicit ThrowCapture(const void* outer_frame) noexcept;
  ~ThrowCapture();
  ThrowCapture(const ThrowCapture&) = delete;
  ThrowCapture& operator=(const ThrowCapture&) = delete;

  // Inside a catch block: the stack where the exception being handled was thrown, innermost
  // frame first, one a line; empty when no throw of it was recorded (thrown on another thread,
  // before this capture, or rethrown with std::rethrow_exception). Never throws.
  std::string traceback() const noexcept;

  // Called by the __cxa_throw interposer on a thread with a live capture; `from_throw` is the
  // return address into __cxa_throw (frames up to it are mproc's, not the thrower's).
  static void on_throw(const void* object, const void* from_throw) noexcept;

 private:
  struct Record {
    const void* object = nullptr;
    std::size_t frames = 0;
    std::uintptr_t pcs[kMaxFrames];
  };

  ThrowCapture* previous_;
  std::uintptr_t limit_;
  std::size_t next_ = 0;
  Record records_[kRecords];
};

// One line per frame for these return addresses (see ThrowCapture::traceback); "" on failure.
std::string symbolize_return_addresses(std::span<const std::uintptr_t> pcs) noexcept;

}  // namespace mproc::detail
