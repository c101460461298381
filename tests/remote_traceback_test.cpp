// Remote tracebacks: a task's exception carries the worker's stack at the throw (issue 19).
// Built with -g, -fno-inline and no sibling calls (tests/CMakeLists.txt), so the three levels
// keep their frames and names in a Release build.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mproc/mproc.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

namespace {

struct ParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The asm statement after each call keeps the call from becoming a jump (its frame would go).
[[gnu::noinline]] void level_three(int kind) {
  if (kind == 1) throw ParseError("bad token");
  if (kind == 2) throw std::invalid_argument("bad argument");
  asm volatile("");
}
[[gnu::noinline]] void level_two(int kind) {
  level_three(kind);
  asm volatile("");
}
[[gnu::noinline]] int level_one(int kind) {
  level_two(kind);
  asm volatile("");
  return kind;
}

// Throws and catches more exceptions than a capture keeps records of, then fails three deep.
[[gnu::noinline]] int noisy_then_fail(int kind) {
  int caught = 0;
  for (int i = 0; i < 10; ++i) {
    try {
      throw std::runtime_error("handled inside the task");
    } catch (const std::runtime_error&) {
      ++caught;
    }
  }
  return level_one(kind) + caught;
}

// The task's own exception_ptr, rethrown later: the same object, so the same stack.
[[gnu::noinline]] int rethrow_later(int kind) {
  std::exception_ptr saved;
  try {
    level_one(kind);
  } catch (...) {
    saved = std::current_exception();
  }
  std::rethrow_exception(saved);
}

[[gnu::noinline]] int out_of_range_in_library(int index) {
  const std::vector<int> v(3);
  return v.at(static_cast<std::size_t>(index));
}

[[noreturn]] int abort_task(int) {
  std::abort();
}

int square(int x) {
  return x * x;
}

// Where each name is in `text`, or npos.
std::vector<std::size_t> positions(const std::string& text,
                                   std::initializer_list<const char*> names) {
  std::vector<std::size_t> at;
  for (const char* n : names) at.push_back(text.find(n));
  return at;
}

void expect_three_levels(const std::string& tb) {
  const auto at = positions(tb, {"level_three(int)", "level_two(int)", "level_one(int)"});
  ASSERT_NE(at[0], std::string::npos) << tb;
  ASSERT_NE(at[1], std::string::npos) << tb;
  ASSERT_NE(at[2], std::string::npos) << tb;
  EXPECT_LT(at[0], at[1]) << "innermost frame first\n" << tb;
  EXPECT_LT(at[1], at[2]) << tb;
  EXPECT_NE(tb.find("remote_traceback_test.cpp:"), std::string::npos) << "file:line\n" << tb;
  // The worker's own frames above the task are left out.
  EXPECT_EQ(tb.find("run_worker"), std::string::npos) << tb;
}

TEST(RemoteTraceback, RemoteErrorNamesTheThreeFunctionsInOrder) {
  mproc::Pool pool(1);
  try {
    pool.apply(level_one, 1);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    EXPECT_NE(e.type_name().find("ParseError"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "what() stays one line";
    expect_three_levels(e.traceback());
    EXPECT_EQ(mproc::remote_traceback(e), e.traceback());
  }
}

// Also run on a stripped copy (ctest -L stripped): there, each frame of the binary's own is its
// module and offset, which addr2line resolves against the unstripped binary.
TEST(RemoteTraceback, EveryFrameIsNamedOrLocated) {
  mproc::Pool pool(1);
  try {
    pool.apply(level_one, 1);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    const std::string& tb = e.traceback();
    ASSERT_FALSE(tb.empty());
    std::istringstream lines(tb);
    std::size_t n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
      EXPECT_EQ(line.rfind("#" + std::to_string(n), 0), 0u) << tb;
      const bool named = line.find('(') != std::string::npos;  // a function's parameters
      const bool located =
          line.find(" in /") != std::string::npos && line.find("+0x") != std::string::npos;
      EXPECT_TRUE(named || located) << line;
    }
    EXPECT_GE(n, 3u) << tb;
  }
}

TEST(RemoteTraceback, StandardExceptionKeepsItsTypeAndGetsTheStack) {
  mproc::Pool pool(1);
  auto r = pool.apply_async(level_one, 2);
  try {
    r.get();
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(typeid(e), typeid(std::invalid_argument));
    EXPECT_STREQ(e.what(), "bad argument");
    expect_three_levels(mproc::remote_traceback(e));
  }
  // The same object again: the same text.
  try {
    r.get();
  } catch (const std::exception& e) {
    expect_three_levels(mproc::remote_traceback(e));
  }
}

TEST(RemoteTraceback, ThrowsCaughtInsideTheTaskDoNotHideTheEscapingOne) {
  mproc::Pool pool(1);
  try {
    pool.apply(noisy_then_fail, 2);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string tb = mproc::remote_traceback(e);
    expect_three_levels(tb);
    EXPECT_NE(tb.find("noisy_then_fail(int)"), std::string::npos) << tb;
  }
}

TEST(RemoteTraceback, RethrownExceptionPtrKeepsTheStackOfItsThrow) {
  mproc::Pool pool(1);
  try {
    pool.apply(rethrow_later, 1);
    FAIL() << "no exception";
  } catch (const mproc::RemoteError& e) {
    expect_three_levels(e.traceback());
  }
}

TEST(RemoteTraceback, ThrowInsideTheStandardLibraryIsCaptured) {
  mproc::Pool pool(1);
  try {
    pool.apply(out_of_range_in_library, 7);
    FAIL() << "no exception";
  } catch (const std::out_of_range& e) {
    const std::string tb = mproc::remote_traceback(e);
    // libstdc++ throws from a cold clone that no dynamic symbol covers: its module then.
    const auto at = positions(tb, {"libstdc++", "out_of_range_in_library(int)"});
    ASSERT_NE(at[0], std::string::npos) << tb;
    ASSERT_NE(at[1], std::string::npos) << tb;
    EXPECT_LT(at[0], at[1]) << tb;
  }
}

TEST(RemoteTraceback, MapRaisesTheFirstFailureWithItsStack) {
  mproc::Pool pool(2);
  const std::vector<int> kinds{0, 0, 2, 0};
  try {
    pool.map(level_one, kinds, 1);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    expect_three_levels(mproc::remote_traceback(e));
  }
}

// A done callback that lets the task's exception through: the logged line carries the stack.
TEST(RemoteTraceback, LogLineOfAnUnhandledFailurePrintsIt) {
  mproc::Pool pool(1);
  auto r = pool.apply_async(level_one, 2);
  r.wait();
  auto log = mproc::get_logger();
  std::ostringstream lines;
  log->sinks().push_back(std::make_shared<spdlog::sinks::ostream_sink_mt>(lines));
  const auto saved_level = log->level();
  log->set_level(spdlog::level::err);  // mproc's logger is off until asked
  // Already complete: it runs here, now.
  r.add_done_callback([](const mproc::AsyncResult<int>& done) { done.get(); });
  log->set_level(saved_level);
  log->sinks().pop_back();
  const std::string text = lines.str();
  EXPECT_NE(text.find("an AsyncResult done callback threw: bad argument"), std::string::npos)
      << text;
  EXPECT_NE(text.find("Remote traceback (innermost first):"), std::string::npos) << text;
  expect_three_levels(text);
}

// A fatal signal's stack is not captured: the error says so (issue 19: "else says why not").
TEST(RemoteTraceback, AbortInATaskSaysWhyThereIsNoStack) {
  mproc::Pool pool(1);
  try {
    pool.apply(abort_task, 0);
    FAIL() << "no exception";
  } catch (const mproc::WorkerLostError& e) {
    EXPECT_EQ(e.signal(), SIGABRT) << e.what();
    EXPECT_NE(std::string(e.what()).find("its stack is not available"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(pool.apply(square, 3), 9);  // a replacement worker
}

TEST(RemoteTraceback, SuccessPathUnchanged) {
  mproc::Pool pool(2);
  std::vector<int> in(200);
  for (int i = 0; i < 200; ++i) in[static_cast<std::size_t>(i)] = i;
  const std::vector<int> out = pool.map(square, in, 7);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i * i);
  EXPECT_EQ(pool.apply(level_one, 0), 0);
}

TEST(RemoteTraceback, LocalExceptionsHaveNone) {
  EXPECT_EQ(mproc::remote_traceback(std::runtime_error("local")), "");
  EXPECT_EQ(mproc::RemoteError("T", "m").traceback(), "");
  try {
    level_one(2);  // capture is off outside a pool worker
  } catch (const std::exception& e) {
    EXPECT_EQ(mproc::remote_traceback(e), "");
  }
}

TEST(RemoteTraceback, ThreadPoolRethrowsTheOriginalObject) {
  mproc::ThreadPool pool(1);
  EXPECT_THROW(pool.apply(level_one, 2), std::invalid_argument);
}

}  // namespace
