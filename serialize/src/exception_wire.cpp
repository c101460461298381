#include "mproc/serialize/detail/exception_wire.hpp"

#include <cxxabi.h>

#include <any>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <optional>
#include <system_error>
#include <typeinfo>
#include <variant>

#include "traced_exception.hpp"

namespace mproc::detail {
namespace {

// The wire names of the classes we rebuild. Order in `classify` matters: most derived first.
enum class Kind : std::uint8_t {
  kRemote = 0,  // anything else: RemoteError(type, message)
  kInvalidArgument,
  kDomainError,
  kLengthError,
  kOutOfRange,
  kLogicError,
  kRangeError,
  kOverflowError,
  kUnderflowError,
  kSystemError,
  kRuntimeError,
  kBadAlloc,
  kBadCast,
  kBadTypeid,
  kBadFunctionCall,
  kBadOptionalAccess,
  kBadVariantAccess,
  kBadAnyCast,
  kException,
  // mproc's own errors raised inside the worker.
  kSerializationError,
  kTimeoutError,
  kEOFError,
  kPoolStateError,
  kMprocError,
  kCancelledError,
  kTaskTimeoutError,
  kWorkerLostError,
  kStartMethodError,
  kLockError,
  kBrokenBarrierError,
  kProcessError,
  kEmpty,
  kFull,
  kClosedError,
  kBrokenPipeError,
  kManagerError,
  kAuthenticationError,
  kSoftTimeLimitExceeded,  // appended: the wire numbers of the kinds above do not change
};

struct Encoded {
  Kind kind = Kind::kRemote;
  std::string type_name;
  std::string message;
  int code = 0;  // std::system_error value
  std::string category;
  std::string traceback;  // the worker's stack at the throw; empty when not captured

  template <class A>
  void serialize(A& ar) {
    ar(kind, type_name, message, code, category, traceback);
  }
};

Kind classify(const std::exception& e) {
  // mproc's own classes first: they derive from std::runtime_error.
  if (dynamic_cast<const SerializationError*>(&e)) return Kind::kSerializationError;
  if (dynamic_cast<const TimeoutError*>(&e)) return Kind::kTimeoutError;
  if (dynamic_cast<const EOFError*>(&e)) return Kind::kEOFError;
  if (dynamic_cast<const PoolStateError*>(&e)) return Kind::kPoolStateError;
  if (dynamic_cast<const CancelledError*>(&e)) return Kind::kCancelledError;
  if (dynamic_cast<const TaskTimeoutError*>(&e)) return Kind::kTaskTimeoutError;
  if (dynamic_cast<const SoftTimeLimitExceeded*>(&e)) return Kind::kSoftTimeLimitExceeded;
  if (dynamic_cast<const WorkerLostError*>(&e)) return Kind::kWorkerLostError;
  if (dynamic_cast<const StartMethodError*>(&e)) return Kind::kStartMethodError;
  if (dynamic_cast<const LockError*>(&e)) return Kind::kLockError;
  if (dynamic_cast<const BrokenBarrierError*>(&e)) return Kind::kBrokenBarrierError;
  if (dynamic_cast<const ProcessError*>(&e)) return Kind::kProcessError;
  if (dynamic_cast<const Empty*>(&e)) return Kind::kEmpty;
  if (dynamic_cast<const Full*>(&e)) return Kind::kFull;
  if (dynamic_cast<const ClosedError*>(&e)) return Kind::kClosedError;
  if (dynamic_cast<const BrokenPipeError*>(&e)) return Kind::kBrokenPipeError;
  if (dynamic_cast<const ManagerError*>(&e)) return Kind::kManagerError;
  if (dynamic_cast<const AuthenticationError*>(&e)) return Kind::kAuthenticationError;
  if (dynamic_cast<const RemoteError*>(&e)) return Kind::kRemote;
  if (typeid(e) == typeid(Error)) return Kind::kMprocError;
  // A user class deriving from a standard one must not be sliced to its base silently: only
  // the exact standard types are rebuilt as themselves.
  const std::type_info& t = typeid(e);
  if (t == typeid(std::invalid_argument)) return Kind::kInvalidArgument;
  if (t == typeid(std::domain_error)) return Kind::kDomainError;
  if (t == typeid(std::length_error)) return Kind::kLengthError;
  if (t == typeid(std::out_of_range)) return Kind::kOutOfRange;
  if (t == typeid(std::logic_error)) return Kind::kLogicError;
  if (t == typeid(std::range_error)) return Kind::kRangeError;
  if (t == typeid(std::overflow_error)) return Kind::kOverflowError;
  if (t == typeid(std::underflow_error)) return Kind::kUnderflowError;
  if (t == typeid(std::system_error)) return Kind::kSystemError;
  if (t == typeid(std::runtime_error)) return Kind::kRuntimeError;
  if (t == typeid(std::bad_alloc)) return Kind::kBadAlloc;
  if (t == typeid(std::bad_cast)) return Kind::kBadCast;
  if (t == typeid(std::bad_typeid)) return Kind::kBadTypeid;
  if (t == typeid(std::bad_function_call)) return Kind::kBadFunctionCall;
  if (t == typeid(std::bad_optional_access)) return Kind::kBadOptionalAccess;
  if (t == typeid(std::bad_variant_access)) return Kind::kBadVariantAccess;
  if (t == typeid(std::bad_any_cast)) return Kind::kBadAnyCast;
  if (t == typeid(std::exception)) return Kind::kException;
  return Kind::kRemote;
}

void write(Bytes& out, const Encoded& enc) {
  WireOutputArchive ar(out);
  ar(enc);
}

// Standard classes whose constructors take no message: keep the type, lose only the text
// (their what() is implementation-defined anyway).
template <class E>
std::exception_ptr plain(const std::string& traceback) {
  return make_traced_exception_ptr(E(), traceback);
}

}  // namespace

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(mangled);
}

void encode_current_exception(Bytes& out, const std::string& traceback) noexcept {
  const std::size_t at = out.size();
  try {
    Encoded enc;
    enc.traceback = traceback;
    try {
      throw;
    } catch (const std::system_error& e) {
      enc.kind = classify(e);
      enc.type_name = demangle(typeid(e).name());
      enc.message = e.what();
      enc.code = e.code().value();
      enc.category = e.code().category().name();
      if (enc.traceback.empty()) enc.traceback = remote_traceback(e);
    } catch (const std::exception& e) {
      enc.kind = classify(e);
      // An error the task got from a pool of its own and let through keeps the stack of its
      // origin unless the task threw it anew.
      if (enc.traceback.empty()) enc.traceback = remote_traceback(e);
      if (const auto* r = dynamic_cast<const RemoteError*>(&e)) {
        enc.type_name = r->type_name();
        enc.message = r->message();
      } else {
        enc.type_name = demangle(typeid(e).name());
        enc.message = e.what();
      }
    } catch (...) {
      enc.kind = Kind::kRemote;
      const std::type_info* t = abi::__cxa_current_exception_type();
      enc.type_name = t ? demangle(t->name()) : "unknown";
      enc.message = "non-std::exception value thrown by task";
    }
    write(out, enc);
  } catch (...) {
    out.resize(at);
    try {
      write(out, Encoded{Kind::kRemote, "unknown", "exception could not be encoded", 0, {}, {}});
    } catch (...) {
    }
  }
}

void encode_error(Bytes& out, const std::string& kind_name, const std::string& message) noexcept {
  try {
    Encoded enc;
    enc.kind = kind_name == "SerializationError" ? Kind::kSerializationError
               : kind_name == "CancelledError"   ? Kind::kCancelledError
               : kind_name == "TaskTimeoutError" ? Kind::kTaskTimeoutError
                                                 : Kind::kMprocError;
    enc.type_name = "mproc::" + kind_name;
    enc.message = message;
    write(out, enc);
  } catch (...) {
  }
}

std::exception_ptr decode_exception(std::span<const char> payload) noexcept {
  try {
    Encoded e;
    WireInputArchive ar(payload);
    ar(e);
    const std::string& m = e.message;
    const std::string& tb = e.traceback;
    switch (e.kind) {
      case Kind::kInvalidArgument:
        return make_traced_exception_ptr(std::invalid_argument(m), tb);
      case Kind::kDomainError:
        return make_traced_exception_ptr(std::domain_error(m), tb);
      case Kind::kLengthError:
        return make_traced_exception_ptr(std::length_error(m), tb);
      case Kind::kOutOfRange:
        return make_traced_exception_ptr(std::out_of_range(m), tb);
      case Kind::kLogicError:
        return make_traced_exception_ptr(std::logic_error(m), tb);
      case Kind::kRangeError:
        return make_traced_exception_ptr(std::range_error(m), tb);
      case Kind::kOverflowError:
        return make_traced_exception_ptr(std::overflow_error(m), tb);
      case Kind::kUnderflowError:
        return make_traced_exception_ptr(std::underflow_error(m), tb);
      case Kind::kSystemError: {
        const std::error_category& cat =
            e.category == "generic" ? std::generic_category() : std::system_category();
        // what() already contains the category message; rebuild with the caller's text only.
        return make_traced_exception_ptr(std::system_error(e.code, cat, m), tb);
      }
      case Kind::kRuntimeError:
        return make_traced_exception_ptr(std::runtime_error(m), tb);
      case Kind::kBadAlloc:
        return plain<std::bad_alloc>(tb);
      case Kind::kBadCast:
        return plain<std::bad_cast>(tb);
      case Kind::kBadTypeid:
        return plain<std::bad_typeid>(tb);
      case Kind::kBadFunctionCall:
        return plain<std::bad_function_call>(tb);
      case Kind::kBadOptionalAccess:
        return plain<std::bad_optional_access>(tb);
      case Kind::kBadVariantAccess:
        return plain<std::bad_variant_access>(tb);
      case Kind::kBadAnyCast:
        return plain<std::bad_any_cast>(tb);
      case Kind::kException:
        return plain<std::exception>(tb);
      case Kind::kSerializationError:
        return make_traced_exception_ptr(SerializationError(m), tb);
      case Kind::kTimeoutError:
        return make_traced_exception_ptr(TimeoutError(m), tb);
      case Kind::kEOFError:
        return make_traced_exception_ptr(EOFError(m), tb);
      case Kind::kPoolStateError:
        return make_traced_exception_ptr(PoolStateError(m), tb);
      case Kind::kMprocError:
        return make_traced_exception_ptr(Error(m), tb);
      case Kind::kCancelledError:
        return make_traced_exception_ptr(CancelledError(m), tb);
      case Kind::kTaskTimeoutError:
        return make_traced_exception_ptr(TaskTimeoutError(m), tb);
      case Kind::kSoftTimeLimitExceeded:
        return make_traced_exception_ptr(SoftTimeLimitExceeded(m), tb);
      case Kind::kWorkerLostError:
        return make_traced_exception_ptr(WorkerLostError(m, 0, -1, 0), tb);
      case Kind::kStartMethodError:
        return make_traced_exception_ptr(StartMethodError(m), tb);
      case Kind::kLockError:
        return make_traced_exception_ptr(LockError(m), tb);
      case Kind::kBrokenBarrierError:
        return make_traced_exception_ptr(BrokenBarrierError(m), tb);
      case Kind::kProcessError:
        return make_traced_exception_ptr(ProcessError(m), tb);
      case Kind::kEmpty:
        return make_traced_exception_ptr(Empty(m), tb);
      case Kind::kFull:
        return make_traced_exception_ptr(Full(m), tb);
      case Kind::kClosedError:
        return make_traced_exception_ptr(ClosedError(m), tb);
      case Kind::kBrokenPipeError:
        return make_traced_exception_ptr(BrokenPipeError(m), tb);
      case Kind::kManagerError:
        return make_traced_exception_ptr(ManagerError(m), tb);
      case Kind::kAuthenticationError:
        return make_traced_exception_ptr(AuthenticationError(m), tb);
      case Kind::kRemote:
        return std::make_exception_ptr(RemoteError(e.type_name, m, tb));
    }
    return std::make_exception_ptr(
        SerializationError("corrupt error frame: unknown exception kind"));
  } catch (const std::exception& ex) {
    return std::make_exception_ptr(
        SerializationError(std::string("corrupt error frame: ") + ex.what()));
  }
}

}  // namespace mproc::detail
