// mproc/manager/detail/protocol.hpp — what a proxy and a Manager's server say to each other.
// Internal (namespace detail).
//
// Every message is one Connection frame (8-byte header, then the payload). After the handshake
// (see auth.hpp) a client sends requests and the server answers each one, in order:
//
//   request   u32 object id (0: the server itself), u8 Op, then the op's fields
//   reply     u8 status (0 ok, 1 error; | kStatusSpin), then the op's results, or an encoded
//             exception
//
// The server never decodes user types: keys and values travel as the bytes of their cereal
// encoding (std::string), and equal values encode to equal bytes, so the server compares and
// hashes keys as bytes. Only update_with runs typed code there: a named callable (see
// serialize/callable.hpp) applied to the stored bytes, which needs the same executable on both
// sides (the handshake compares build ids).
//
// Thread safety: constants and plain functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <typeinfo>

#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

enum class ObjectKind : std::uint8_t {
  kDict = 1,
  kList,
  kNamespace,
  kValue,
  kQueue,
  kLock,
  kRLock,
  kEvent,
  kSemaphore,
  kBoundedSemaphore,
};

enum class Op : std::uint8_t {
  // object 0, the server
  kCreate = 1,  // kind, name, type tag, i64 arg, bytes init -> u32 id
  kPing,
  kShutdown,
  // dict
  kDictSet = 20,
  kDictGet,       // key -> bool found, value
  kDictContains,  // key -> bool
  kDictErase,     // key -> bool existed
  kDictSize,      // -> u64
  kDictKeys,      // -> vector<bytes>
  kDictValues,    // -> vector<bytes>
  kDictItems,     // -> vector<pair<bytes, bytes>>
  kDictUpdate,    // vector<pair<bytes, bytes>>
  kDictClear,
  kDictSetDefault,  // key, default -> value
  kDictUpdateWith,  // key, initial, callable -> new value
  kDictPop,         // key -> bool found, value
  // list
  kListAppend = 40,  // value
  kListExtend,       // vector<bytes>
  kListAt,           // i64 index -> value
  kListSet,          // i64 index, value
  kListSize,         // -> u64
  kListPop,          // i64 index -> value
  kListSnapshot,     // -> vector<bytes>
  kListClear,
  kListInsert,  // i64 index, value
  kListRemove,  // value (std::invalid_argument when absent)
  kListIndex,   // value, i64 start, i64 stop -> u64 (std::invalid_argument when absent)
  kListCount,   // value -> u64
  kListReverse,
  // namespace
  kNsSet = 60,    // name, u64 tag, value
  kNsGet,         // name -> bool found, u64 tag, value
  kNsContains,    // name -> bool
  kNsErase,       // name -> bool
  kNsNames,       // -> vector<string>
  kNsUpdateWith,  // name, u64 tag, initial, callable -> new value
  // value
  kValueGet = 80,    // -> value
  kValueSet,         // value
  kValueUpdateWith,  // callable -> new value
  // queue
  kQueuePut = 100,  // value, bool block, i64 timeout ns (<0: none) -> bool (false: Full)
  kQueueGet,        // bool block, i64 timeout ns -> bool got, value
  kQueueSize,       // -> u64
  kQueueTaskDone,
  kQueueJoin,     // i64 timeout ns -> bool
  kQueueMaxsize,  // -> i64
  // lock / rlock
  kLockAcquire = 120,  // bool block, i64 timeout ns -> bool
  kLockRelease,
  kLockLocked,  // -> bool
  // event
  kEventSet = 130,
  kEventClear,
  kEventIsSet,  // -> bool
  kEventWait,   // i64 timeout ns -> bool
  // semaphore
  kSemAcquire = 140,  // bool block, i64 timeout ns -> bool
  kSemRelease,        // u64 n
  kSemValue,          // -> i64
};

// Set in a reply's status when the server has CPUs to spare (few clients for the machine's
// CPUs): both ends then wait for the next message by polling for up to kSpinWait before
// sleeping. A blocking round trip between two processes costs two cross-core wake-ups, several
// times a polled one (benchmarks/README.md has the numbers), but with more clients than CPUs
// polling would starve the server, so the server decides per reply.
inline constexpr std::uint8_t kStatusSpin = 0x80;
inline constexpr std::chrono::microseconds kSpinWait{50};
inline constexpr std::chrono::microseconds kNoSpin{0};

// Identifies a C++ type across processes of the same build (FNV-1a of the mangled name).
std::uint64_t type_tag(const std::type_info& t) noexcept;
template <class T>
std::uint64_t type_tag_of() noexcept {
  return type_tag(typeid(T));
}

// The cereal encoding of `x` as a byte string (how values are stored on the server).
template <class T>
std::string encode_value(const T& x) {
  Bytes b;
  b.reserve(64);  // also keeps GCC 12's -Wstringop-overflow from misfiring on an empty vector
  {
    WireOutputArchive ar(b);
    ar(x);
  }
  return std::string(b.begin(), b.end());
}

// Decodes a value encoded by encode_value. Throws SerializationError if the bytes are not a T.
template <class T>
T decode_value(const std::string& bytes) {
  return decode_exactly<T>(std::span<const char>(bytes.data(), bytes.size()), "a manager value");
}

}  // namespace mproc::detail
