// fuzz_regressions_test: replays every fuzz target's seed corpus and saved findings in any build
// (GCC or Clang, with or without sanitizers), so an input that once crashed stays tested.
//
// The targets are compiled with MPROC_FUZZ_REGRESSION: MPROC_FUZZ_TARGET(name) then registers
// an entry point instead of defining LLVMFuzzerTestOneInput. For each target, every file in
// MPROC_FUZZ_DIR/corpus/<name>/ and MPROC_FUZZ_DIR/regressions/<name>/ is fed to it; a crash or
// sanitizer report fails the test (the input's path is printed just before it runs).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "fuzz_common.hpp"

#ifndef MPROC_FUZZ_DIR
#error "MPROC_FUZZ_DIR must name tests/fuzz"
#endif

// A huge allocation must fail fast here too, as libFuzzer's -malloc_limit_mb makes it: under
// ASan/TSan through the sanitizer allocator's limit (fatal, with a report), otherwise through an
// address-space cap (std::bad_alloc, which the targets treat as a finding). UBSan reports are
// fatal, as in the fuzz build.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MPROC_FUZZ_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define MPROC_FUZZ_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(MPROC_FUZZ_ASAN)
#define MPROC_FUZZ_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(MPROC_FUZZ_TSAN)
#define MPROC_FUZZ_TSAN 1
#endif
#if defined(MPROC_FUZZ_ASAN)
extern "C" const char* __asan_default_options() {
  return "max_allocation_size_mb=512:allocator_may_return_null=0";
}
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1";
}
#elif defined(MPROC_FUZZ_TSAN)
extern "C" const char* __tsan_default_options() {
  return "max_allocation_size_mb=512:allocator_may_return_null=0";
}
#else
[[maybe_unused]] static const int g_address_space_cap = [] {
  const rlim_t cap = rlim_t{2} << 30;
  rlimit lim{};
  if (::getrlimit(RLIMIT_AS, &lim) == 0 && (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur > cap)) {
    lim.rlim_cur = cap;
    ::setrlimit(RLIMIT_AS, &lim);
  }
  return 0;
}();
#endif

namespace fs = std::filesystem;

namespace mproc_fuzz {

static std::map<std::string, EntryFn>& targets() {
  static std::map<std::string, EntryFn> t;
  return t;
}

int register_target(const char* name, EntryFn fn) {
  targets()[name] = fn;
  return 0;
}

}  // namespace mproc_fuzz

namespace {

std::vector<fs::path> inputs(const std::string& kind, const std::string& target) {
  std::vector<fs::path> files;
  const fs::path dir = fs::path(MPROC_FUZZ_DIR) / kind / target;
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename().string().starts_with(".")) continue;
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Input {
  std::string target;
  std::string kind;  // "corpus" or "regressions"
  fs::path path;
};

void PrintTo(const Input& in, std::ostream* os) {
  *os << in.path.string();
}

// One test per input file: ctest runs each in its own process, so one crash hides no other.
std::vector<Input> all_inputs() {
  std::vector<Input> all;
  for (const auto& [name, fn] : mproc_fuzz::targets()) {
    for (const char* kind : {"corpus", "regressions"}) {
      for (const fs::path& p : inputs(kind, name)) all.push_back({name, kind, p});
    }
  }
  return all;
}

std::string test_name(const testing::TestParamInfo<Input>& info) {
  std::string n =
      info.param.kind + "_" + info.param.target + "_" + info.param.path.filename().string();
  for (char& c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

std::vector<std::uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

class Replay : public testing::TestWithParam<Input> {};

}  // namespace

TEST(FuzzRegressions, EveryTargetHasASeedCorpus) {
  ASSERT_FALSE(mproc_fuzz::targets().empty());
  for (const auto& [name, fn] : mproc_fuzz::targets()) {
    EXPECT_FALSE(inputs("corpus", name).empty()) << "no seeds in corpus/" << name;
  }
}

// A crash or sanitizer report ends the process: the path printed first names the input.
TEST_P(Replay, RunsClean) {
  const Input& in = GetParam();
  std::fprintf(stderr, "[ replay   ] %s: %s\n", in.target.c_str(), in.path.c_str());
  std::fflush(stderr);
  const std::vector<std::uint8_t> bytes = read_file(in.path);
  EXPECT_EQ(mproc_fuzz::targets().at(in.target)(bytes.data(), bytes.size()), 0);
}

INSTANTIATE_TEST_SUITE_P(Inputs, Replay, testing::ValuesIn(all_inputs()), test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Replay);
