// tests/fuzz/fuzz_types.hpp — the values and callables the fuzz targets decode and run, shared
// with the seed generator so the seeds it writes name the same invokers.
//
// Invokers are keyed by the hash of their mangled type name. Only named types and plain
// functions appear here (no lambdas: GCC and Clang mangle closure types differently), so a seed
// written by a GCC build names the same invokers in a Clang fuzz build.
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <complex>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/serialize/detail/callable.hpp"

namespace mproc_fuzz {

// ---- values ----------------------------------------------------------------------------------

struct Point {
  double x = 0, y = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x, y);
  }
};

// A nested struct as a task argument or result would be: containers of structs, an optional
// map, a variant, a pair.
struct Record {
  std::string name;
  std::vector<Point> points;
  std::optional<std::map<int, std::string>> tags;
  std::variant<int, std::string, std::vector<std::uint8_t>> extra;
  std::pair<std::int64_t, std::uint8_t> flag{};
  template <class A>
  void serialize(A& ar) {
    ar(name, points, tags, extra, flag);
  }
};

using Triple = std::tuple<int, std::string, std::vector<double>>;

// ---- callables -------------------------------------------------------------------------------

int twice(int x);                  // plain function, map shape
std::string shout(std::string s);  // plain function taking a string

struct Concat {  // stateless object, apply shape with two arguments
  std::string operator()(const std::string& s, int n) const;
};
struct Scale {  // function object with state, sent with cereal
  int factor = 1;
  long operator()(int x) const;
  template <class A>
  void serialize(A& ar) {
    ar(factor);
  }
};
struct SumTriple {  // apply shape over the tuple, arithmetic result
  double operator()(int a, const std::string& s, const std::vector<double>& v) const;
};
struct RecordSize {  // map shape over the nested struct
  std::size_t operator()(const Record& r) const;
};
struct Count {  // void result
  void operator()(const std::map<std::string, int>& m) const;
};
struct Thrower {  // throws standard and mproc exceptions, and a non-exception value
  int operator()(int x) const;
};
struct Repeat {  // result size chosen by the input: can exceed the frame cap
  std::string operator()(std::uint32_t n) const;
};
struct Nullary {  // apply(f) with no arguments: items are zero bytes on the wire
  int operator()() const;
};

namespace d = mproc::detail;

template <class F, class Item, d::CallShape S>
struct Reg {
  using Fn = F;
  using ItemT = Item;
  static constexpr d::CallShape shape = S;
  using Result = d::call_result_t<F, Item, S>;
};

// Every invoker the fuzz targets register; their keys are instantiated (and registered at
// static initialisation) wherever this list is used.
using Registered = std::tuple<  //
    Reg<int (*)(int), int, d::CallShape::kMap>,
    Reg<std::string (*)(std::string), std::string, d::CallShape::kMap>,
    Reg<Concat, std::tuple<std::string, int>, d::CallShape::kApply>,
    Reg<Scale, int, d::CallShape::kMap>,  //
    Reg<SumTriple, Triple, d::CallShape::kApply>, Reg<RecordSize, Record, d::CallShape::kMap>,
    Reg<Count, std::map<std::string, int>, d::CallShape::kMap>,
    Reg<Thrower, int, d::CallShape::kMap>,  //
    Reg<Repeat, std::uint32_t, d::CallShape::kMap>,
    Reg<Nullary, std::tuple<>, d::CallShape::kApply>>;

// ---- definitions -----------------------------------------------------------------------------

inline int twice(int x) {
  return static_cast<int>(2u * static_cast<unsigned>(x));
}
inline std::string shout(std::string s) {
  return s + "!";
}
inline std::string Concat::operator()(const std::string& s, int n) const {
  return s + std::to_string(n);
}
inline long Scale::operator()(int x) const {
  return static_cast<long>(factor) * x;
}
inline double SumTriple::operator()(int a, const std::string& s,
                                    const std::vector<double>& v) const {
  double sum = a + static_cast<double>(s.size());
  for (double x : v) sum += x;
  return sum;
}
inline std::size_t RecordSize::operator()(const Record& r) const {
  return r.name.size() + r.points.size() + (r.tags ? r.tags->size() : 0) + r.extra.index();
}
inline void Count::operator()(const std::map<std::string, int>& m) const {
  volatile std::size_t n = m.size();
  (void)n;
}
inline int Thrower::operator()(int x) const {
  switch (x & 7) {
    case 1:
      throw std::invalid_argument("negative");
    case 2:
      throw std::out_of_range("far");
    case 3:
      throw mproc::SerializationError("inner");
    case 4:
      throw 42;
    case 5:
      throw std::system_error(std::make_error_code(std::errc::io_error), "io");
    default:
      return x;
  }
}
inline std::string Repeat::operator()(std::uint32_t n) const {
  return std::string(n % (std::size_t{3} << 20), 'r');  // up to 3 MiB: above the harness cap
}
inline int Nullary::operator()() const {
  return 7;
}

}  // namespace mproc_fuzz
