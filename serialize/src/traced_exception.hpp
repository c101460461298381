// traced_exception.hpp — exception objects that carry a remote traceback beside them.
//
// A standard exception rebuilt from the wire must stay exactly its own type (callers catch and
// compare it), so its traceback cannot live in the object. It lives in a registry keyed by the
// exception object's address instead; the object is allocated and thrown through the Itanium C++
// ABI (<cxxabi.h>, libstdc++ and libc++abi alike) with a destructor that also drops its entry,
// so an entry lives exactly as long as its object and an address is never reused while listed.
//
// Thread safety: the registry is locked; any thread may create, look up or destroy.
#pragma once

#include <cxxabi.h>

#include <exception>
#include <new>
#include <string>
#include <typeinfo>

namespace mproc::detail {

// Throw std::bad_alloc only.
void register_traceback(const void* object, std::string traceback);
// Empty when `object` has no entry.
std::string find_traceback(const void* object);
void forget_traceback(const void* object) noexcept;

template <class E>
void destroy_traced(void* object) {
  static_cast<E*>(object)->~E();
  forget_traceback(object);
}

// An exception_ptr to a copy of `e` for which remote_traceback() returns `traceback`
// (a plain make_exception_ptr when `traceback` is empty or cannot be stored).
template <class E>
std::exception_ptr make_traced_exception_ptr(const E& e, std::string traceback) noexcept {
  if (traceback.empty()) return std::make_exception_ptr(e);
  void* object = abi::__cxa_allocate_exception(sizeof(E));
  ::new (object) E(e);  // standard exception copies do not throw
  try {
    register_traceback(object, std::move(traceback));
  } catch (...) {
    static_cast<E*>(object)->~E();
    abi::__cxa_free_exception(object);
    return std::make_exception_ptr(e);
  }
  try {
    abi::__cxa_throw(object, const_cast<std::type_info*>(&typeid(E)), &destroy_traced<E>);
  } catch (...) {
    return std::current_exception();
  }
}

}  // namespace mproc::detail
