// mproc/serialize/detail/wire_archive.hpp — the cereal archives that put values on mproc's wire.
//
// They write and read cereal's binary layout straight into / out of a byte buffer, with no
// iostream in between (the hot path of every task), and the input side never trusts a length:
// a container size larger than the bytes left in the frame is a SerializationError before any
// allocation, so eight garbage bytes cannot make cereal reserve hundreds of gigabytes.
//
// Thread safety: distinct archives are independent; one archive must not be shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/common.hpp>
// The standard-library types every task may use without an extra include.
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "mproc/errors.hpp"

namespace mproc::detail {

// A growable byte buffer; the archives append to it, frames are built in it.
using Bytes = std::vector<char>;

class WireOutputArchive
    : public cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit WireOutputArchive(Bytes& out)
      : cereal::OutputArchive<WireOutputArchive, cereal::AllowEmptyClassElision>(this), out_(out) {}

  void saveBinary(const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    out_.insert(out_.end(), p, p + size);
  }

 private:
  Bytes& out_;
};

class WireInputArchive
    : public cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit WireInputArchive(std::span<const char> in)
      : cereal::InputArchive<WireInputArchive, cereal::AllowEmptyClassElision>(this), in_(in) {}

  void loadBinary(void* data, std::size_t size) {
    if (size > remaining()) {
      throw SerializationError("truncated payload: need " + std::to_string(size) + " bytes, " +
                               std::to_string(remaining()) + " left");
    }
    if (size != 0) std::memcpy(data, in_.data() + pos_, size);
    pos_ += size;
  }

  // A declared element count can never exceed the bytes that would have to follow it.
  void checkSize(std::uint64_t count) const {
    if (count > remaining()) {
      throw SerializationError("corrupt payload: container of " + std::to_string(count) +
                               " elements declared with only " + std::to_string(remaining()) +
                               " bytes left");
    }
  }

  std::size_t remaining() const noexcept { return in_.size() - pos_; }

  // The next `size` bytes, in place; throws like loadBinary when fewer remain.
  std::span<const char> take(std::size_t size) {
    if (size > remaining()) {
      throw SerializationError("truncated payload: need " + std::to_string(size) + " bytes, " +
                               std::to_string(remaining()) + " left");
    }
    const std::span<const char> out = in_.subspan(pos_, size);
    pos_ += size;
    return out;
  }
  std::size_t position() const noexcept { return pos_; }

 private:
  std::span<const char> in_;
  std::size_t pos_ = 0;
};

}  // namespace mproc::detail

namespace cereal {

template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(
    mproc::detail::WireOutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(t));
}

template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>
CEREAL_LOAD_FUNCTION_NAME(mproc::detail::WireInputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}

// A bool is one byte, 0 or 1: any other byte is corruption (copied into a bool it would be
// undefined behaviour).
inline void CEREAL_LOAD_FUNCTION_NAME(mproc::detail::WireInputArchive& ar, bool& t) {
  unsigned char byte = 0;
  ar.loadBinary(&byte, 1);
  if (byte > 1) {
    throw mproc::SerializationError("corrupt payload: bool byte " + std::to_string(byte));
  }
  t = byte != 0;
}

template <class Archive, class T>
inline CEREAL_ARCHIVE_RESTRICT(mproc::detail::WireInputArchive, mproc::detail::WireOutputArchive)
    CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(mproc::detail::WireOutputArchive& ar, const SizeTag<T>& t) {
  ar(t.size);
}

template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(mproc::detail::WireInputArchive& ar, SizeTag<T>& t) {
  ar(t.size);
  ar.checkSize(static_cast<std::uint64_t>(t.size));
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(mproc::detail::WireOutputArchive& ar,
                                      const BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(mproc::detail::WireInputArchive& ar, BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

// Byte strings and byte vectors are built straight from the payload: one copy, where cereal's
// resize-then-read would first zero-fill them (a measurable cost for megabyte payloads).
template <class C, class Tr, class A>
requires(sizeof(C) == 1) inline void CEREAL_LOAD_FUNCTION_NAME(mproc::detail::WireInputArchive& ar,
                                                               std::basic_string<C, Tr, A>& s) {
  size_type size = 0;
  ar(make_size_tag(size));
  const auto bytes = ar.take(static_cast<std::size_t>(size));
  s.assign(reinterpret_cast<const C*>(bytes.data()), bytes.size());
}

template <class T, class A>
requires(std::is_arithmetic_v<T> && sizeof(T) == 1 &&
         !std::is_same_v<
             T, bool>) inline void CEREAL_LOAD_FUNCTION_NAME(mproc::detail::WireInputArchive& ar,
                                                             std::vector<T, A>& v) {
  size_type size = 0;
  ar(make_size_tag(size));
  const auto bytes = ar.take(static_cast<std::size_t>(size));
  const T* p = reinterpret_cast<const T*>(bytes.data());
  v.assign(p, p + bytes.size());
}

}  // namespace cereal

CEREAL_REGISTER_ARCHIVE(mproc::detail::WireOutputArchive)
CEREAL_REGISTER_ARCHIVE(mproc::detail::WireInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(mproc::detail::WireInputArchive, mproc::detail::WireOutputArchive)

namespace mproc::detail {

// Decodes one T that must fill `bytes` exactly (a message, a queue item, a stored value).
// Whatever cereal or a user's serialize() throws becomes a SerializationError naming `what`.
template <class T>
T decode_exactly(std::span<const char> bytes, const char* what) {
  WireInputArchive in(bytes);
  T x{};
  try {
    in(x);
  } catch (const SerializationError&) {
    throw;
  } catch (const std::exception& e) {
    throw SerializationError(std::string(what) + " does not decode: " + e.what());
  }
  if (in.remaining() != 0) {
    throw SerializationError(std::string(what) + " does not decode: " +
                             std::to_string(in.remaining()) + " bytes left over");
  }
  return x;
}

}  // namespace mproc::detail

namespace mproc {

// True when T can cross the wire (cereal knows how to save and load it).
template <class T>
inline constexpr bool is_wire_serializable_v =
    cereal::traits::is_output_serializable<T, detail::WireOutputArchive>::value&&
        cereal::traits::is_input_serializable<T, detail::WireInputArchive>::value;

}  // namespace mproc
