// Fuzz target: the payload of a kResultErr frame (exception_wire).
//
// Input: an encoded exception as a worker would send it. decode_exception is noexcept and
// documents a corrupt encoding as a SerializationError; whatever it rebuilds must be a
// std::exception, and must keep its type and remote traceback through another encode/decode
// (the worker re-raises what a task threw, which may itself be a decoded remote error).
// Findings: crashes, sanitizer reports, a null exception_ptr, a non-std::exception, a type or a
// traceback that changes on the round trip.
#include <cstring>
#include <exception>
#include <typeinfo>

#include "fuzz_common.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"

namespace d = mproc::detail;
using mproc_fuzz::fail;

namespace {

struct Seen {
  const std::type_info* type = nullptr;
  std::string remote_type;  // RemoteError's type_name()
  std::string traceback;    // mproc::remote_traceback()
};

// Rethrows `e`, checks it, and encodes it again as encode_current_exception would.
Seen inspect(const std::exception_ptr& e, d::Bytes* reencoded) {
  if (!e) fail("decode_exception returned a null exception_ptr");
  Seen s;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    s.type = &typeid(ex);
    (void)std::strlen(ex.what());
    if (const auto* r = dynamic_cast<const mproc::RemoteError*>(&ex))
      s.remote_type = r->type_name();
    s.traceback = mproc::remote_traceback(ex);
    if (reencoded) d::encode_current_exception(*reencoded);
  } catch (...) {
    fail("decode_exception rebuilt a non-std::exception");
  }
  return s;
}

}  // namespace

MPROC_FUZZ_TARGET(exception_decode) {
  const std::span<const char> in = mproc_fuzz::as_chars(data, size);
  d::Bytes again;
  const Seen first = inspect(d::decode_exception(in), &again);
  const Seen second = inspect(d::decode_exception(again), nullptr);
  if (*first.type != *second.type) {
    fail("exception type changed on a round trip:",
         d::demangle(first.type->name()) + " -> " + d::demangle(second.type->name()));
  }
  if (first.remote_type != second.remote_type) fail("RemoteError type name changed");
  if (first.traceback != second.traceback) fail("remote traceback changed on a round trip");

  // encode_error with arbitrary text (the worker uses it for its own errors).
  const std::string text(in.begin(), in.end());
  d::Bytes enc;
  d::encode_error(enc, text.substr(0, text.size() / 2), text.substr(text.size() / 2));
  (void)inspect(d::decode_exception(enc), nullptr);
  return 0;
}
