// Fuzz target: task arguments and results through the bounded WireInputArchive.
//
// Input: a type selector byte, a count byte, then a payload. The payload is decoded as one
// value of the selected type straight from the archive (what an invoker does with each item),
// and as `count` results with decode_results<R> (what the coordinator does with a kResultOk
// frame). Expected: any std::exception straight from the archive (mproc::Error, cereal::Exception,
// a standard constructor's own exception), and only SerializationError out of decode_results.
// Findings: crashes, sanitizer reports, allocations out of proportion to the input, a decoded
// value that does not survive an encode/decode round trip.
#include <cstring>
#include <exception>
#include <memory>
#include <typeinfo>

#include "fuzz_common.hpp"
#include "fuzz_types.hpp"
#include "mproc/pool/detail/tasks.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"

namespace d = mproc::detail;
using mproc_fuzz::fail;

namespace {

template <class T>
inline constexpr bool kUnordered = false;
template <class K, class V>
inline constexpr bool kUnordered<std::unordered_map<K, V>> = true;
template <class K>
inline constexpr bool kUnordered<std::unordered_set<K>> = true;

template <class T>
d::Bytes encode(const T& v) {
  d::Bytes b;
  d::WireOutputArchive ar(b);
  ar(v);
  return b;
}

template <class T>
void decode_one(std::span<const char> payload) {
  T v{};
  try {
    d::WireInputArchive in(payload);
    in(v);
  } catch (const std::exception&) {
    // Straight from the archive, cereal's own checks throw cereal::Exception and a standard
    // type's constructor may throw (std::bitset from a string of other than '0'/'1'): the
    // documented callers (decode_results below, invoke_payload) must turn these into
    // SerializationError. Anything not derived from std::exception escapes and is a finding.
    return;
  }
  // What decoded must re-encode, and decode again to the same thing.
  const d::Bytes once = encode(v);
  T back{};
  try {
    d::WireInputArchive in(once);
    in(back);
    if (in.remaining() != 0) fail("re-encoded value leaves trailing bytes");
  } catch (const std::exception& e) {
    fail("re-encoded value does not decode:", e.what());
  }
  if constexpr (kUnordered<T>) {
    if (!(back == v)) fail("round trip changed an unordered container");
  } else {
    if (encode(back) != once) fail("round trip changed the value");
  }
}

// The coordinator's path for a kResultOk frame (tasks.hpp: ApplyTask / MapChunkTask::on_ok).
template <class T>
void decode_results(std::span<const char> payload, std::size_t count) {
  // An array, not a std::vector: std::vector<bool> has no data().
  const std::unique_ptr<T[]> out(new T[count]{});
  try {
    d::decode_results(payload, out.get(), count);
  } catch (...) {
    const std::exception_ptr e = d::current_as_serialization_error();
    try {
      std::rethrow_exception(e);
    } catch (const mproc::SerializationError&) {
    } catch (...) {
      fail("a result decode failure is not reported as SerializationError");
    }
  }
}

template <class T>
void run(std::span<const char> payload, std::size_t count) {
  decode_one<T>(payload);
  decode_results<T>(payload, count);
}

using Types = std::tuple<  //
    int, std::string, std::vector<int>, std::map<std::string, int>, std::optional<std::string>,
    mproc_fuzz::Triple, mproc_fuzz::Record, std::vector<std::string>,
    std::variant<std::monostate, int, std::string>,
    std::unordered_map<std::string, std::vector<int>>, std::set<int>, std::deque<std::string>,
    std::list<int>, std::bitset<70>, std::chrono::nanoseconds, std::complex<double>,
    std::array<int, 3>, std::vector<bool>, std::unordered_set<std::string>, bool,
    std::pair<double, std::optional<int>>, std::vector<std::vector<std::uint16_t>>,
    std::vector<mproc_fuzz::Point>>;

template <std::size_t... I>
void dispatch(std::size_t which, std::span<const char> payload, std::size_t count,
              std::index_sequence<I...>) {
  ((which == I ? run<std::tuple_element_t<I, Types>>(payload, count) : void()), ...);
}

}  // namespace

MPROC_FUZZ_TARGET(wire_decode) {
  std::span<const char> in = mproc_fuzz::as_chars(data, size);
  const std::size_t which = mproc_fuzz::take<std::uint8_t>(in) % std::tuple_size_v<Types>;
  const std::size_t count = 1 + mproc_fuzz::take<std::uint8_t>(in) % 8;
  dispatch(which, in, count, std::make_index_sequence<std::tuple_size_v<Types>>{});
  return 0;
}
