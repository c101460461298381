// The wire on its own: frames, bounded archives, callable naming, exceptions. No processes.
#include <gtest/gtest.h>
#include <link.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mproc/pool.hpp>
#include <mproc/serialize/detail/callable.hpp>
#include <mproc/serialize/detail/eh_frame_hdr.hpp>
#include <mproc/serialize/detail/exception_wire.hpp>
#include <mproc/serialize/detail/frame.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace d = mproc::detail;

namespace {

int twice(int x) {
  return 2 * x;
}

struct Scale {
  int factor = 1;
  int operator()(int x) const { return factor * x; }
  template <class A>
  void serialize(A& ar) {
    ar(factor);
  }
};

// Encodes a one-item apply payload for `fn(args)` and runs it as a worker would.
template <class F, class... A>
d::Bytes run_payload(F fn, A... args) {
  using Item = d::apply_item_t<F, A...>;
  d::Bytes payload;
  d::encode_callable<F, Item, d::CallShape::kApply>(payload, fn, 1);
  d::WireOutputArchive ar(payload);
  ar(Item(args...));
  d::Bytes out;
  d::invoke_payload(payload, out);
  return out;
}

template <class T>
T decode_one(const d::Bytes& b) {
  T v{};
  d::WireInputArchive in(b);
  in(v);
  return v;
}

}  // namespace

TEST(Frame, RoundTripsHeaderFields) {
  d::Bytes b;
  const auto at = d::begin_frame(b);
  b.insert(b.end(), {'a', 'b', 'c'});
  d::finish_frame(b, at, d::FrameKind::kResultOk, 42, 7);
  const auto h = d::parse_frame_header(b, 1024);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->kind, d::FrameKind::kResultOk);
  EXPECT_EQ(h->task_id, 42u);
  EXPECT_EQ(h->aux, 7u);
  EXPECT_EQ(h->length, 3u);
}

TEST(Frame, ShortInputIsNotAFrameYet) {
  d::Bytes b(d::kFrameHeaderSize - 1, 0);
  EXPECT_FALSE(d::parse_frame_header(b, 1024));
}

TEST(Frame, RejectsOversizedBeforeReadingThePayload) {
  d::Bytes b;
  const auto at = d::begin_frame(b);
  b.resize(b.size() + 100);
  d::finish_frame(b, at, d::FrameKind::kTask, 1, 0);
  b.resize(d::kFrameHeaderSize);  // the payload is not even there: the header alone decides
  EXPECT_THROW(d::parse_frame_header(b, 10), mproc::SerializationError);
}

TEST(Frame, RejectsBadMagicVersionAndKind) {
  d::Bytes b;
  d::finish_frame(b, d::begin_frame(b), d::FrameKind::kTask, 1, 0);
  for (std::size_t byte : {0u, 2u, 3u}) {
    d::Bytes bad = b;
    bad[byte] = static_cast<char>(0x7f);
    EXPECT_THROW(d::parse_frame_header(bad, 1024), mproc::SerializationError) << byte;
  }
}

TEST(Frame, FinishRefusesPayloadAboveCap) {
  d::Bytes b;
  const auto at = d::begin_frame(b);
  b.resize(b.size() + 64);
  EXPECT_THROW(d::finish_frame(b, at, d::FrameKind::kTask, 1, 0, 32), mproc::SerializationError);
}

TEST(WireArchive, GarbageLengthPrefixIsRefusedWithoutAllocating) {
  // Eight bytes claiming a vector of 2^62 ints: cereal alone would try to allocate it.
  d::Bytes b(8, 0);
  const std::uint64_t huge = std::uint64_t{1} << 62;
  std::memcpy(b.data(), &huge, 8);
  std::vector<int> v;
  d::WireInputArchive in(b);
  EXPECT_THROW(in(v), mproc::SerializationError);
  std::string s;
  d::WireInputArchive in2(b);
  EXPECT_THROW(in2(s), mproc::SerializationError);
}

TEST(WireArchive, RoundTripsCommonTypes) {
  using T = std::tuple<std::string, std::vector<double>, std::map<std::string, int>,
                       std::optional<int>, std::pair<int, std::string>>;
  const T value{"hé", {1.5, -2.0}, {{"a", 1}, {"b", 2}}, 7, {3, "x"}};
  d::Bytes b;
  d::WireOutputArchive out(b);
  out(value);
  T back;
  d::WireInputArchive in(b);
  in(back);
  EXPECT_EQ(back, value);
  EXPECT_EQ(in.remaining(), 0u);
}

TEST(WireArchive, TruncatedPayloadThrows) {
  d::Bytes b;
  d::WireOutputArchive out(b);
  out(std::string("hello world"));
  b.resize(b.size() - 3);
  std::string s;
  d::WireInputArchive in(b);
  EXPECT_THROW(in(s), mproc::SerializationError);
}

TEST(Callable, PlainFunctionLambdaAndFunctorRunFromTheirNames) {
  EXPECT_EQ(decode_one<int>(run_payload(&twice, 21)), 42);
  EXPECT_EQ(decode_one<int>(run_payload([](int a, int b) { return a - b; }, 10, 3)), 7);
  EXPECT_EQ(decode_one<int>(run_payload(Scale{5}, 3)), 15);
  // Arguments are converted to the parameter types before encoding.
  auto len = [](const std::string& s) { return s.size(); };
  EXPECT_EQ(decode_one<std::size_t>(run_payload(len, "four")), 4u);
}

namespace {

// A map over numbers runs in bulk in the worker (callable.hpp's run_bulk): its reply must be
// byte for byte what cereal writes item by item, after whatever the buffer already held.
template <class F, class Item>
d::Bytes run_map_chunk(F fn, const std::vector<Item>& items, std::size_t drop_tail = 0,
                       std::size_t max_out = 0) {
  d::Bytes payload;
  d::encode_callable<F, Item, d::CallShape::kMap>(payload, fn,
                                                  static_cast<std::uint32_t>(items.size()));
  d::WireOutputArchive ar(payload);
  for (const Item& x : items) ar(x);
  payload.resize(payload.size() - drop_tail);
  d::Bytes out{'e', 'a', 'r', 'l', 'i', 'e', 'r'};
  d::invoke_payload(payload, out, max_out);
  return out;
}

int g_seen_sum = 0;
void note(int x) {
  g_seen_sum += x;
}
bool is_odd(long x) {
  return x % 2 != 0;
}

}  // namespace

TEST(Callable, AMapOverNumbersReplyIsWhatCerealWritesItemByItem) {
  std::vector<int> ints(1000);
  for (int i = 0; i < 1000; ++i) ints[i] = i * 7 - 300;
  const d::Bytes got = run_map_chunk(&twice, ints);
  d::Bytes want{'e', 'a', 'r', 'l', 'i', 'e', 'r'};
  {
    d::WireOutputArchive ar(want);
    for (int x : ints) ar(twice(x));
  }
  EXPECT_EQ(got, want);

  const std::vector<double> ds{0.5, -2.25, 1e300};
  const d::Bytes scaled = run_map_chunk([](double x) { return x * 2; }, ds);
  d::WireInputArchive in(std::span<const char>(scaled).subspan(7));
  for (double x : ds) {
    double y = 0;
    in(y);
    EXPECT_EQ(y, x * 2);
  }
  EXPECT_EQ(in.remaining(), 0u);

  const d::Bytes odd = run_map_chunk(&is_odd, std::vector<long>{1, 2, 3});
  EXPECT_EQ(odd.size(), 7u + 3u);
  EXPECT_EQ(std::vector<char>(odd.begin() + 7, odd.end()), (std::vector<char>{1, 0, 1}));

  g_seen_sum = 0;
  EXPECT_EQ(run_map_chunk(&note, std::vector<int>{1, 2, 3, 4}).size(), 7u);  // void: no bytes
  EXPECT_EQ(g_seen_sum, 10);
}

TEST(Callable, AMapOverNumbersRefusesShortItemsAndAnOversizedReplyBeforeRunning) {
  g_seen_sum = 0;
  EXPECT_THROW(run_map_chunk(&note, std::vector<int>{1, 2, 3}, 1), mproc::SerializationError);
  EXPECT_THROW(run_map_chunk(&twice, std::vector<int>(100), 0, 399), mproc::SerializationError);
  EXPECT_EQ(run_map_chunk(&twice, std::vector<int>(100), 0, 400).size(), 407u);
  EXPECT_EQ(g_seen_sum, 0) << "a short chunk ran some of its items";
}

TEST(Callable, UnknownInvokerIsRefused) {
  d::Bytes payload;
  d::WireOutputArchive ar(payload);
  ar(std::uint64_t{0xdeadbeef}, std::uint8_t{0}, std::uint32_t{1});
  d::Bytes out;
  EXPECT_THROW(d::invoke_payload(payload, out), mproc::SerializationError);
}

TEST(Callable, AnOffsetThatIsNotAFunctionStartIsRefused) {
  d::Bytes payload;
  d::encode_callable<int (*)(int), std::tuple<int>, d::CallShape::kApply>(payload, &twice, 1);
  // The offset is the 8 bytes just before the count; move it one byte into the function.
  const std::size_t count_at = payload.size() - 4;
  std::uint64_t offset;
  std::memcpy(&offset, payload.data() + count_at - 8, 8);
  ++offset;
  std::memcpy(payload.data() + count_at - 8, &offset, 8);
  d::WireOutputArchive ar(payload);
  ar(std::tuple<int>(1));
  d::Bytes out;
  EXPECT_THROW(d::invoke_payload(payload, out), mproc::SerializationError);
}

namespace {

// Runs twice's payload with its offset replaced; returns the error, or "" if it ran.
std::string run_with_offset(std::uint64_t offset) {
  d::Bytes payload;
  d::encode_callable<int (*)(int), std::tuple<int>, d::CallShape::kApply>(payload, &twice, 1);
  std::memcpy(payload.data() + payload.size() - 4 - 8, &offset, 8);
  d::WireOutputArchive ar(payload);
  ar(std::tuple<int>(1));
  d::Bytes out;
  try {
    d::invoke_payload(payload, out);
  } catch (const mproc::SerializationError& e) {
    return e.what();
  }
  return "";
}

std::uint64_t offset_of_twice() {
  d::Bytes payload;
  d::encode_callable<int (*)(int), std::tuple<int>, d::CallShape::kApply>(payload, &twice, 1);
  std::uint64_t offset;
  std::memcpy(&offset, payload.data() + payload.size() - 4 - 8, 8);
  return offset;
}

// This executable's .eh_frame_hdr as the loader mapped it, and its offset from the load base.
std::pair<std::span<const unsigned char>, std::uint64_t> main_eh_frame_hdr() {
  std::pair<std::span<const unsigned char>, std::uint64_t> r;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* r = static_cast<std::pair<std::span<const unsigned char>, std::uint64_t>*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_GNU_EH_FRAME) continue;
          r->first = {reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr),
                      ph.p_memsz};
          r->second = ph.p_vaddr;
        }
        return 1;  // the first module is the executable
      },
      &r);
  return r;
}

// The [begin, end) offsets of this executable's PLT sections, from its file's section headers.
std::vector<std::pair<std::uint64_t, std::uint64_t>> plt_sections() {
  std::ifstream f("/proc/self/exe", std::ios::binary);
  auto read_at = [&f](std::uint64_t at, void* to, std::size_t n) {
    f.seekg(static_cast<std::streamoff>(at));
    f.read(static_cast<char*>(to), static_cast<std::streamsize>(n));
  };
  ElfW(Ehdr) eh{};
  read_at(0, &eh, sizeof eh);
  std::vector<ElfW(Shdr)> sh(eh.e_shnum);
  read_at(eh.e_shoff, sh.data(), sh.size() * sizeof(ElfW(Shdr)));
  std::string names(sh.at(eh.e_shstrndx).sh_size, '\0');
  read_at(sh[eh.e_shstrndx].sh_offset, names.data(), names.size());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> plt;
  for (const auto& s : sh) {
    const std::string name(names.c_str() + s.sh_name);
    if (name.rfind(".plt", 0) == 0 || name == ".iplt") {
      plt.emplace_back(s.sh_addr, s.sh_addr + s.sh_size);
    }
  }
  return plt;
}

}  // namespace

// Run by the stripped copy too (ctest stripped.serialize_test), where the offsets are
// checked against .eh_frame_hdr instead of the symbol table.
TEST(Callable, OffsetsInsideOrOutsideAFunctionAreRefusedWithTheReason) {
  const std::uint64_t f = offset_of_twice();
  ASSERT_EQ(run_with_offset(f), "");
  for (std::uint64_t forged :
       {f + 1, f + 2, f + 4, f - 1, std::uint64_t{0}, std::uint64_t{1} << 40}) {
    const std::string err = run_with_offset(forged);
    EXPECT_NE(err.find("no function starts at offset " + std::to_string(forged)), std::string::npos)
        << "offset " << forged << ": " << err;
  }
}

TEST(Callable, TheExecutablesEhFrameHdrListsItsFunctions) {
  const auto [hdr, at] = main_eh_frame_hdr();
  ASSERT_FALSE(hdr.empty()) << "no PT_GNU_EH_FRAME";
  const auto starts = d::eh_frame_hdr_function_starts(hdr, at);
  ASSERT_FALSE(starts.empty()) << "the table's encodings were refused";
  EXPECT_TRUE(std::is_sorted(starts.begin(), starts.end()));
  const std::uint64_t f = offset_of_twice();
  EXPECT_TRUE(std::binary_search(starts.begin(), starts.end(), f));
  EXPECT_FALSE(std::binary_search(starts.begin(), starts.end(), f + 1));
}

// The linker gives the PLT an FDE: its first entry would call the lazy-binding resolver with a
// garbage index. Listed in .eh_frame_hdr, it must still be refused.
TEST(Callable, APltStubIsRefusedThoughItHasAnFde) {
  const auto [hdr, at] = main_eh_frame_hdr();
  const auto starts = d::eh_frame_hdr_function_starts(hdr, at);
  int checked = 0;
  for (const auto& [lo, hi] : plt_sections()) {
    for (auto it = std::lower_bound(starts.begin(), starts.end(), lo);
         it != starts.end() && *it < hi; ++it) {
      EXPECT_NE(run_with_offset(*it).find("no function starts"), std::string::npos);
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "this executable has no PLT with an FDE";
}

TEST(Callable, EhFrameHdrParserAcceptsTheUsualLayoutAndRefusesTheRest) {
  // version, eh_frame_ptr_enc (pcrel|sdata4), fde_count_enc (udata4), table_enc (datarel|sdata4)
  auto make = [](std::vector<unsigned char> head, std::vector<std::int32_t> words) {
    std::vector<unsigned char> b = std::move(head);
    for (std::int32_t w : words) {
      unsigned char bytes[4];
      std::memcpy(bytes, &w, 4);
      b.insert(b.end(), bytes, bytes + 4);
    }
    return b;
  };
  auto parse = [](const std::vector<unsigned char>& b) {
    return d::eh_frame_hdr_function_starts(b, 0x1000);
  };
  using V = std::vector<std::uint64_t>;
  const std::vector<std::int32_t> body{0x40, 2, -0x10, 0x50, 0x20, 0x60};  // ptr, count, 2 rows
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0x3b}, body)), (V{0xff0, 0x1020}));
  // No eh_frame_ptr; an 8-byte count.
  EXPECT_EQ(parse(make({1, 0xff, 0x04, 0x3b}, {1, 0, 0x30, 0x70})), (V{0x1030}));
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0x3b}, {0x40, 0})), V{});
  EXPECT_EQ(parse(make({2, 0x1b, 0x03, 0x3b}, body)), V{});              // unknown version
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0x1b}, body)), V{});              // table pcrel, not datarel
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0x3c}, body)), V{});              // table sdata8
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0xff}, body)), V{});              // no table
  EXPECT_EQ(parse(make({1, 0x1b, 0xff, 0x3b}, body)), V{});              // no count
  EXPECT_EQ(parse(make({1, 0x1b, 0x13, 0x3b}, body)), V{});              // a pc-relative count
  EXPECT_EQ(parse(make({1, 0x01, 0x03, 0x3b}, body)), V{});              // uleb128 eh_frame_ptr
  EXPECT_EQ(parse(make({1, 0x5b, 0x03, 0x3b}, body)), V{});              // aligned eh_frame_ptr
  EXPECT_EQ(parse(make({1, 0x1b, 0x0b, 0x3b}, {0x40, -2, 0, 0})), V{});  // negative count
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0x3b}, {0x40, 3, -0x10, 0x50, 0x20, 0x60})), V{});
  EXPECT_EQ(parse(make({1, 0x1b, 0x03, 0x3b}, {0x40, 1, -0x2000, 0})), V{});  // below the base
  EXPECT_EQ(parse({1, 0x1b}), V{});
  EXPECT_EQ(parse({}), V{});
}

TEST(ExceptionWire, StandardTypesComeBackAsThemselves) {
  auto round_trip = [](auto ex) {
    d::Bytes b;
    try {
      throw ex;
    } catch (...) {
      d::encode_current_exception(b);
    }
    return d::decode_exception(b);
  };
  EXPECT_THROW(std::rethrow_exception(round_trip(std::invalid_argument("bad"))),
               std::invalid_argument);
  EXPECT_THROW(std::rethrow_exception(round_trip(std::out_of_range("far"))), std::out_of_range);
  EXPECT_THROW(std::rethrow_exception(round_trip(42)), mproc::RemoteError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::LockError("not held"))), mproc::LockError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::BrokenBarrierError("aborted"))),
               mproc::BrokenBarrierError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::StartMethodError("no init"))),
               mproc::StartMethodError);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::Empty("empty"))), mproc::Empty);
  EXPECT_THROW(std::rethrow_exception(round_trip(mproc::Full("full"))), mproc::Full);
  try {
    std::rethrow_exception(round_trip(std::runtime_error("boom")));
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
}

TEST(ExceptionWire, CorruptEncodingIsASerializationError) {
  const d::Bytes junk{1, 2, 3};
  EXPECT_THROW(std::rethrow_exception(d::decode_exception(junk)), mproc::SerializationError);
}

TEST(PoolFrames, OversizedTaskAndResultAreRefusedWithoutHarm) {
  mproc::PoolOptions o;
  o.processes = 1;
  o.max_frame_bytes = 1 << 20;
  mproc::Pool pool(o);
  auto echo = [](const std::string& s) { return s; };
  const std::string big(2 << 20, 'x');
  EXPECT_THROW(pool.apply_async(echo, big), mproc::SerializationError);
  auto grow = [](int n) { return std::string(static_cast<std::size_t>(n), 'y'); };
  EXPECT_THROW(pool.apply(grow, 2 << 20), mproc::SerializationError);
  EXPECT_EQ(pool.apply(echo, std::string("small")), "small");
}
