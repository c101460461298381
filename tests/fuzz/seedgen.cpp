// fuzz_seedgen: writes the small valid inputs of tests/fuzz/corpus/<target>/.
//   cmake --build BUILD --target fuzz_seedgen && BUILD/tests/fuzz/fuzz_seedgen tests/fuzz/corpus
// Seeds naming a plain function carry its offset in *this* executable; in a fuzz binary they
// exercise the refusal path (and give the fuzzer the layout to mutate).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "fuzz_types.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"

namespace d = mproc::detail;
namespace fs = std::filesystem;
using namespace mproc_fuzz;

namespace {

fs::path g_root;

void write(const std::string& target, const std::string& name, const d::Bytes& b) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

template <class... T>
d::Bytes encode(const T&... v) {
  d::Bytes b;
  d::WireOutputArchive ar(b);
  ar(v...);
  return b;
}

d::Bytes frame(d::FrameKind kind, std::uint64_t id, const d::Bytes& payload,
               std::uint64_t aux = 0) {
  d::Bytes b;
  const std::size_t at = d::begin_frame(b);
  b.insert(b.end(), payload.begin(), payload.end());
  d::finish_frame(b, at, kind, id, aux);
  return b;
}

d::Bytes cat(std::initializer_list<d::Bytes> parts) {
  d::Bytes b;
  for (const auto& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}

template <class E>
d::Bytes encoded_exception(const E& e, const std::string& traceback = {}) {
  d::Bytes b;
  try {
    throw e;
  } catch (...) {
    d::encode_current_exception(b, traceback);
  }
  return b;
}

// A task payload as encode_chunk writes it.
template <class F, class Item, d::CallShape S, class... Items>
d::Bytes task(const F& fn, const Items&... items) {
  d::Bytes b;
  d::encode_callable<F, Item, S>(b, fn, static_cast<std::uint32_t>(sizeof...(Items)));
  d::WireOutputArchive ar(b);
  (ar(Item(items)), ...);
  return b;
}

Record sample_record() {
  Record r;
  r.name = "rec";
  r.points = {{1.0, 2.0}, {-3.5, 0.25}};
  r.tags = std::map<int, std::string>{{1, "a"}, {2, "bb"}};
  r.extra = std::string("x");
  r.flag = {-7, 1};
  return r;
}

void frame_header_seeds() {
  const d::Bytes cap = encode(std::uint32_t{1} << 20);
  const d::Bytes ok = frame(d::FrameKind::kResultOk, 7, encode(42), 1234);
  const d::Bytes err =
      frame(d::FrameKind::kResultErr, 8, encoded_exception(std::invalid_argument("bad")));
  const d::Bytes cancel = frame(d::FrameKind::kCancel, 9, {});
  const d::Bytes retiring = frame(d::FrameKind::kRetiring, 0, {});
  const d::Bytes tsk =
      frame(d::FrameKind::kTask, 10, task<Scale, int, d::CallShape::kMap>(Scale{3}, 1, 2));
  write("frame_header", "result_ok", cat({cap, ok}));
  write("frame_header", "result_err", cat({cap, err}));
  write("frame_header", "stream", cat({cap, tsk, cancel, ok, err, retiring}));
  d::Bytes partial = cat({cap, ok, err});
  partial.resize(partial.size() - 5);
  write("frame_header", "partial", partial);
  write("frame_header", "small_cap", cat({encode(std::uint32_t{2}), ok}));
}

template <class T>
void wire_seed(std::uint8_t selector, const std::string& name, const T& v, std::uint8_t count = 1) {
  d::Bytes b{static_cast<char>(selector), static_cast<char>(count - 1)};
  for (std::uint8_t i = 0; i < count; ++i) {
    const d::Bytes e = encode(v);
    b.insert(b.end(), e.begin(), e.end());
  }
  write("wire_decode", name, b);
}

void wire_decode_seeds() {  // selectors follow fuzz_wire_decode.cpp's Types
  wire_seed(0, "int", 42);
  wire_seed(0, "int_x3", -1, 3);
  wire_seed(1, "string", std::string("hello"));
  wire_seed(2, "vector_int", std::vector<int>{1, 2, 3});
  wire_seed(3, "map", std::map<std::string, int>{{"a", 1}, {"bc", 2}});
  wire_seed(4, "optional", std::optional<std::string>("opt"));
  wire_seed(4, "optional_empty", std::optional<std::string>());
  wire_seed(5, "tuple", Triple{5, "five", {0.5, 1e300}});
  wire_seed(6, "record", sample_record());
  wire_seed(7, "vector_string", std::vector<std::string>{"x", "", "yz"});
  wire_seed(8, "variant", std::variant<std::monostate, int, std::string>(std::string("v")));
  wire_seed(9, "unordered_map",
            std::unordered_map<std::string, std::vector<int>>{{"k", {1}}, {"", {}}});
  wire_seed(10, "set", std::set<int>{3, 1, 2});
  wire_seed(11, "deque", std::deque<std::string>{"d", "e"});
  wire_seed(12, "list", std::list<int>{4, 5});
  wire_seed(13, "bitset", std::bitset<70>("1011"));
  wire_seed(14, "duration", std::chrono::nanoseconds(123456789));
  wire_seed(15, "complex", std::complex<double>(1.0, -2.0));
  wire_seed(16, "array", std::array<int, 3>{7, 8, 9});
  wire_seed(17, "vector_bool", std::vector<bool>{true, false, true});
  wire_seed(18, "unordered_set", std::unordered_set<std::string>{"u", "v"});
  wire_seed(19, "bool", true);
  wire_seed(20, "pair", std::pair<double, std::optional<int>>(2.5, 3));
  wire_seed(21, "nested_vector", std::vector<std::vector<std::uint16_t>>{{1, 2}, {}, {3}});
  wire_seed(22, "points", std::vector<Point>{{1, 2}, {3, 4}});
}

void exception_seeds() {
  write("exception_decode", "invalid_argument",
        encoded_exception(std::invalid_argument("bad arg")));
  write("exception_decode", "system_error",
        encoded_exception(std::system_error(std::make_error_code(std::errc::io_error), "io")));
  write("exception_decode", "remote_int", encoded_exception(42));
  write("exception_decode", "serialization_error",
        encoded_exception(mproc::SerializationError("corrupt")));
  write("exception_decode", "worker_lost",
        encoded_exception(mproc::WorkerLostError("lost", 12, -1, 9)));
  write("exception_decode", "bad_alloc", encoded_exception(std::bad_alloc()));
  const std::string tb = "#0   f(int) at task.cpp:3\n#1   g() at task.cpp:7\n";
  write("exception_decode", "traceback_remote", encoded_exception(42, tb));
  write("exception_decode", "traceback_out_of_range",
        encoded_exception(std::out_of_range("index"), tb));
  d::Bytes b;
  d::encode_error(b, "CancelledError", "cancelled before it started");
  write("exception_decode", "cancelled", b);
}

void task_seeds() {
  using S = d::CallShape;
  auto t = [](std::uint64_t id, const d::Bytes& payload) {
    return frame(d::FrameKind::kTask, id, payload);
  };
  write("task_frame", "twice", t(1, task<int (*)(int), int, S::kMap>(&twice, 1, 2, 3)));
  write("task_frame", "shout",
        t(2, task<std::string (*)(std::string), std::string, S::kMap>(&shout, "hi")));
  write("task_frame", "concat",
        t(3, task<Concat, std::tuple<std::string, int>, S::kApply>(
                 Concat{}, std::tuple<std::string, int>("n", 4))));
  write("task_frame", "scale", t(4, task<Scale, int, S::kMap>(Scale{3}, 5, -6)));
  write("task_frame", "sum_triple",
        t(5, task<SumTriple, Triple, S::kApply>(SumTriple{}, Triple{1, "ab", {0.5, 0.25}})));
  write("task_frame", "record_size",
        t(6, task<RecordSize, Record, S::kMap>(RecordSize{}, sample_record())));
  write("task_frame", "count",
        t(7, task<Count, std::map<std::string, int>, S::kMap>(
                 Count{}, std::map<std::string, int>{{"a", 1}})));
  write("task_frame", "thrower", t(8, task<Thrower, int, S::kMap>(Thrower{}, 0, 1, 2, 3, 4, 5, 6)));
  write("task_frame", "repeat",
        t(9, task<Repeat, std::uint32_t, S::kMap>(Repeat{}, std::uint32_t{5})));
  write("task_frame", "nullary",
        t(10, task<Nullary, std::tuple<>, S::kApply>(Nullary{}, std::tuple<>(), std::tuple<>())));
  write("task_frame", "init_cancel_task",
        cat({frame(d::FrameKind::kInit, 0, task<Scale, int, S::kMap>(Scale{2}, 1)),
             frame(d::FrameKind::kCancel, 11, {}), t(11, task<Thrower, int, S::kMap>(Thrower{}, 1)),
             t(12, task<Scale, int, S::kMap>(Scale{-1}, 7))}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  frame_header_seeds();
  wire_decode_seeds();
  exception_seeds();
  task_seeds();
  return 0;
}
