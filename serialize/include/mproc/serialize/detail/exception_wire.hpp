// mproc/serialize/detail/exception_wire.hpp — how a task's exception crosses to the caller.
//
// The worker records which standard exception class it caught (most derived first) with its
// message; the coordinator rebuilds that same class, so `catch (const std::invalid_argument&)`
// works across the process boundary; the worker's stack at the throw travels beside it (a
// RemoteError's traceback(), mproc::remote_traceback() for the rest). mproc's own errors come back
// as themselves. Anything else (user exception classes, `throw 42`) becomes mproc::RemoteError
// carrying the demangled type name and the message.
//
// Thread safety: stateless functions.
#pragma once

#include <exception>
#include <string>

#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

// Appends an encoding of the exception currently being handled to `out`, with `traceback` (the
// stack where it was thrown, as the worker captured it; when empty, the exception's own
// remote_traceback(), so an error relayed from a nested pool keeps its origin's stack).
// Must be called inside a catch block. Never throws (falls back to a fixed message).
void encode_current_exception(Bytes& out, const std::string& traceback = {}) noexcept;

// Appends an encoding of an mproc::Error subclass chosen by `kind_name` (e.g. a SerializationError
// raised by the worker itself while decoding a frame).
void encode_error(Bytes& out, const std::string& kind_name, const std::string& message) noexcept;

// Rebuilds the exception encoded in `payload`. A corrupt encoding yields a SerializationError.
std::exception_ptr decode_exception(std::span<const char> payload) noexcept;

// Demangled name of a type_info, e.g. "std::vector<int>".
std::string demangle(const char* mangled);

}  // namespace mproc::detail
