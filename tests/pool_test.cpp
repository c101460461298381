#include <gtest/gtest.h>

#include <mproc/mproc.hpp>

namespace {
int square(int x) {
  return x * x;
}
bool is_odd(int x) {
  return x % 2 != 0;
}
}  // namespace

TEST(PoolSmoke, ApplyMapImap) {
  mproc::Pool pool(2);
  EXPECT_EQ(pool.apply(square, 7), 49);
  std::vector<int> in{1, 2, 3, 4, 5};
  EXPECT_EQ(pool.map(square, in), (std::vector<int>{1, 4, 9, 16, 25}));
  auto r = pool.apply_async([](int a, int b) { return a + b; }, 2, 3);
  EXPECT_EQ(r.get(), 5);
  std::vector<int> got;
  for (int y : pool.imap(square, in)) got.push_back(y);
  EXPECT_EQ(got, (std::vector<int>{1, 4, 9, 16, 25}));
}

// std::vector<bool> has no data() and packs bits: results of map/imap must still arrive whole.
TEST(PoolSmoke, BoolResults) {
  std::vector<int> in(1000);
  for (int i = 0; i < 1000; ++i) in[static_cast<std::size_t>(i)] = i;
  std::vector<bool> expected;
  for (int x : in) expected.push_back(is_odd(x));
  mproc::Pool pool(2);
  EXPECT_EQ(pool.map(is_odd, in, 7), expected);
  std::vector<bool> lazy;
  for (bool b : pool.imap(is_odd, in, 3)) lazy.push_back(b);
  EXPECT_EQ(lazy, expected);
  mproc::ThreadPool threads(4);
  EXPECT_EQ(threads.map(is_odd, in, 1), expected);
}

TEST(ThreadPoolSmoke, SameApi) {
  mproc::ThreadPool pool(2);
  int base = 10;
  EXPECT_EQ(pool.apply([base](int x) { return x + base; }, 1), 11);
  std::vector<int> in{1, 2, 3};
  EXPECT_EQ(pool.map(square, in), (std::vector<int>{1, 4, 9}));
  std::vector<int> got;
  for (int y : pool.imap(square, in)) got.push_back(y);
  EXPECT_EQ(got, (std::vector<int>{1, 4, 9}));
  EXPECT_THROW(pool.apply([] { throw std::out_of_range("x"); }), std::out_of_range);
}

TEST(Progress, MapAndImapDrawToTheGivenStream) {
  char* text = nullptr;
  std::size_t size = 0;
  FILE* mem = open_memstream(&text, &size);
  ASSERT_NE(mem, nullptr);
  {
    mproc::Pool pool(2);
    std::vector<int> in(1000, 3);
    EXPECT_EQ(pool.map(square, in, 10, mproc::progress("squares", mem)), std::vector<int>(1000, 9));
    long sum = 0;
    for (int y : pool.imap(square, in, 5, mproc::progress("lazy", mem))) sum += y;
    EXPECT_EQ(sum, 9000);
  }
  std::fclose(mem);
  const std::string out(text, size);
  std::free(text);
  EXPECT_NE(out.find("squares [########################] 1000/1000 100.0%"), std::string::npos)
      << out;
  EXPECT_NE(out.find("lazy [########################] 1000/1000 100.0%"), std::string::npos) << out;
}

TEST(Progress, UnknownTotalShowsCountAndRate) {
  mproc::ProgressBar bar(0, mproc::progress("x", stderr));
  bar.add(42);
  EXPECT_NE(bar.render().find("42 items"), std::string::npos) << bar.render();
}
