// The __cxa_throw interposer and ThrowCapture's records. This file holds no throw expression:
// the compiler's own declaration of __cxa_throw (which it calls for `throw`) differs from ours
// in the type of its second parameter.
#include "mproc/worker/detail/throw_capture.hpp"

#include <dlfcn.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace mproc::detail {

using ThrowFn = void (*)(void*, void*, void (*)(void*));

namespace {

thread_local ThrowCapture* t_capture = nullptr;

ThrowFn real_throw() noexcept {
  static std::atomic<ThrowFn> fn{nullptr};
  ThrowFn f = fn.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<ThrowFn>(::dlsym(RTLD_NEXT, "__cxa_throw"));
    if (f == nullptr) {  // no C++ runtime after us: nothing can throw
      static const char msg[] = "mproc: no __cxa_throw after mproc's (static libstdc++?)\n";
      (void)!::write(2, msg, sizeof msg - 1);
      std::abort();
    }
    fn.store(f, std::memory_order_release);
  }
  return f;
}

struct Walk {
  std::uintptr_t* pcs;
  std::size_t max;
  std::size_t n = 0;
  std::uintptr_t limit;
};

_Unwind_Reason_Code record_frame(_Unwind_Context* ctx, void* arg) {
  auto* w = static_cast<Walk*>(arg);
  // The frame that made the capture and its callers are the worker's, not the task's. A
  // context's CFA is its frame's stack pointer at the call it made, so the first frame whose
  // CFA lies above the limit is the caller of the frame that holds it: that one goes too.
  if (w->n > 0 && _Unwind_GetCFA(ctx) > w->limit) {
    if (w->n > 3) --w->n;
    return _URC_END_OF_STACK;
  }
  const std::uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  w->pcs[w->n++] = ip;
  return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// The thrown object's address: libstdc++'s and libc++'s exception_ptr hold just that pointer,
// which is also what __cxa_throw was given.
const void* current_exception_object() noexcept {
  static_assert(sizeof(std::exception_ptr) == sizeof(void*));
  const std::exception_ptr e = std::current_exception();
  const void* object = nullptr;
  std::memcpy(&object, static_cast<const void*>(&e), sizeof object);
  return object;
}

}  // namespace

ThrowCapture::ThrowCapture(const void* outer_frame) noexcept
    : previous_(t_capture),
      limit_(outer_frame ? reinterpret_cast<std::uintptr_t>(outer_frame) : UINTPTR_MAX) {
  t_capture = this;
}

ThrowCapture::~ThrowCapture() {
  t_capture = previous_;
}

void ThrowCapture::on_throw(const void* object, const void* from_throw) noexcept {
  ThrowCapture* c = t_capture;
  Record& r = c->records_[c->next_++ % kRecords];
  r.object = object;
  // Frames: this function, the hook, __cxa_throw (at `from_throw`), then the thrower; the
  // first ones are left out.
  constexpr std::size_t kOurs = 3;
  std::uintptr_t pcs[kMaxFrames + kOurs];
  Walk w{pcs, kMaxFrames + kOurs, 0, c->limit_};
  _Unwind_Backtrace(record_frame, &w);
  const auto from = reinterpret_cast<std::uintptr_t>(from_throw);
  std::size_t skip = 0;
  while (skip < w.n && skip < kOurs && pcs[skip] != from) ++skip;
  skip = skip < w.n && pcs[skip] == from ? skip + 1 : 0;
  r.frames = w.n - skip;
  std::memcpy(r.pcs, pcs + skip, r.frames * sizeof(std::uintptr_t));
}

std::string ThrowCapture::traceback() const noexcept {
  const void* object = current_exception_object();
  if (object == nullptr) return {};
  for (std::size_t i = 1; i <= kRecords && i <= next_; ++i) {  // newest first
    const Record& r = records_[(next_ - i) % kRecords];
    if (r.object != object) continue;
    // Symbolizing may throw and catch (allocation): those throws are not the task's.
    ThrowCapture* const live = t_capture;
    t_capture = nullptr;
    std::string text = symbolize_return_addresses({r.pcs, r.frames});
    t_capture = live;
    return text;
  }
  return {};
}

}  // namespace mproc::detail

using mproc::detail::ThrowFn;

// Called first by every throw: records the stack if a capture is live, returns the real
// __cxa_throw.
extern "C" __attribute__((visibility("hidden"), noinline)) ThrowFn mproc_throw_hook(
    void* object) noexcept {
  if (mproc::detail::t_capture != nullptr) {
    mproc::detail::ThrowCapture::on_throw(object, __builtin_return_address(0));
  }
  return mproc::detail::real_throw();
}

#if defined(__x86_64__) && defined(__ELF__)
// Every throw expression calls this. It jumps to the real __cxa_throw rather than calling it:
// a frame of ours left on the stack would cost each throw an unwinding step in both of the
// unwinder's passes (about a sixth more instructions per throw, measured with callgrind), and a
// C++ body cannot jump (GCC knows __cxa_throw never returns and will not make it a tail call).
// The three argument registers are saved around the hook (which keeps the stack 16-aligned).
asm(R"(
  .text
  .globl __cxa_throw
  .type __cxa_throw, @function
__cxa_throw:
  .cfi_startproc
  pushq %rdi
  .cfi_adjust_cfa_offset 8
  pushq %rsi
  .cfi_adjust_cfa_offset 8
  pushq %rdx
  .cfi_adjust_cfa_offset 8
  call mproc_throw_hook
  popq %rdx
  .cfi_adjust_cfa_offset -8
  popq %rsi
  .cfi_adjust_cfa_offset -8
  popq %rdi
  .cfi_adjust_cfa_offset -8
  jmp *%rax
  .cfi_endproc
  .size __cxa_throw, .-__cxa_throw
)");
#else
// Elsewhere a plain call: one frame more to unwind per throw. The signature is the C++ ABI's,
// with the type_info pointer as void*.
extern "C" [[noreturn]] void __cxa_throw(void* object, void* type, void (*destroy)(void*)) {
  mproc_throw_hook(object)(object, type, destroy);
  __builtin_unreachable();
}
#endif
