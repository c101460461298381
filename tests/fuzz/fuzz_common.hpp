// tests/fuzz/fuzz_common.hpp — what every mproc fuzz target shares.
//
// Each target defines its entry point with MPROC_FUZZ_TARGET(name). In a libFuzzer build that is
// LLVMFuzzerTestOneInput; in the regression gtest (MPROC_FUZZ_REGRESSION, any compiler) it is a
// function registered under `name`, so one test binary can replay the corpus and the saved
// crashes of every target.
//
// An input may make the code under test throw mproc::Error (the documented outcome for corrupt
// bytes); crashes, sanitizer reports, huge allocations and broken invariants are findings: the
// targets call fail(), which aborts so that libFuzzer records the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "mproc/errors.hpp"

namespace mproc_fuzz {

using EntryFn = int (*)(const std::uint8_t*, std::size_t);

// Regression mode only: records a target's entry point (defined in regression_driver.cpp).
int register_target(const char* name, EntryFn fn);

// A broken invariant: print it and abort, so the fuzzer keeps the input as a crash.
[[noreturn]] inline void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "mproc fuzz invariant violated: %s %s\n", what, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::span<const char> as_chars(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Consumes a little-endian integer from the front of the input (zero-filled when short).
template <class T>
T take(std::span<const char>& in) {
  T v{};
  std::uint8_t* p = reinterpret_cast<std::uint8_t*>(&v);
  for (std::size_t i = 0; i < sizeof(T) && !in.empty(); ++i) {
    p[i] = static_cast<std::uint8_t>(in.front());
    in = in.subspan(1);
  }
  return v;
}

}  // namespace mproc_fuzz

#if defined(MPROC_FUZZ_REGRESSION)
#define MPROC_FUZZ_TARGET(name)                                                   \
  static int mproc_fuzz_entry_##name(const std::uint8_t* data, std::size_t size); \
  [[maybe_unused]] static const int mproc_fuzz_registered_##name =                \
      ::mproc_fuzz::register_target(#name, &mproc_fuzz_entry_##name);             \
  static int mproc_fuzz_entry_##name(const std::uint8_t* data, std::size_t size)
#else
#define MPROC_FUZZ_TARGET(name) \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
#endif
