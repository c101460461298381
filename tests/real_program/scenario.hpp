// scenario.hpp — small real programs, one per named scenario, in one helper binary.
//
// Each defect that only shows in a real program (buffered stdout at a fork, a handled Ctrl-C,
// exit() in a task, the program's own fork() calls, a descriptor limit) is reproduced by a
// scenario: a function that runs as the whole program, after mproc::init, exactly as a user's
// main() would. real_program_test.cpp runs each one as a separate process in its own process
// group with a hard deadline, and checks its output, its exit status and that nothing it
// started is left behind.
//
//   MPROC_SCENARIO(my_case) { ...; return 0; }   // the exit status the test expects
//
// A scenario reports what the test should check by printing to stdout; "READY" on a line of
// its own tells the test it may now send the signal it was asked to send.
#pragma once

#include <cstdio>

namespace mproc_scenario {

using Fn = int (*)();
int add(const char* name, Fn fn);

// Prints "READY" and flushes: the test sends its signal after reading it.
inline void ready() {
  std::fputs("READY\n", stdout);
  std::fflush(stdout);
}

}  // namespace mproc_scenario

#define MPROC_SCENARIO(name)                                       \
  static int scenario_##name();                                    \
  [[maybe_unused]] static const int scenario_##name##_registered = \
      ::mproc_scenario::add(#name, &scenario_##name);              \
  static int scenario_##name()
