// mproc/context.hpp — Python's multiprocessing.get_context(): a start method bound to the
// objects made through it, leaving the program-wide default alone.
//
//   auto ctx = mproc::get_context("spawn");
//   mproc::Pool pool = ctx.Pool(4);            // ctx = get_context("spawn"); ctx.Pool(4)
//
// Thread safety: a value type; distinct and shared objects may be used from any thread.
// Throws: get_context throws StartMethodError for an unknown name or for "forkserver" /
// "spawn" when mproc::init has not run.
#pragma once

#include <string_view>

#include "mproc/pool.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/start_method.hpp"

namespace mproc {

class Context {
 public:
  explicit Context(StartMethod method) : method_(method) { detail::require_start_method(method); }

  StartMethod start_method() const noexcept { return method_; }

  // A pool whose workers start with this context's method (overrides options.start_method).
  ::mproc::Pool Pool(std::size_t processes = 0) const {
    PoolOptions o;
    o.processes = processes;
    return Pool(std::move(o));
  }
  ::mproc::Pool Pool(PoolOptions options) const {
    options.start_method = method_;
    return ::mproc::Pool(options);
  }

 private:
  StartMethod method_;
};

inline Context get_context(StartMethod method) {
  return Context(method);
}
inline Context get_context(std::string_view name) {
  return Context(parse_start_method(name));
}
// The context of the current default method (Python's get_context() with no argument).
inline Context get_context() {
  return Context(get_start_method());
}

}  // namespace mproc
