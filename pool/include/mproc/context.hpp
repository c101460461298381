// mproc/context.hpp — Python's multiprocessing.get_context(): a start method bound to the
// objects made through it, leaving the program-wide default alone.
//
//   auto ctx = mproc::get_context("spawn");
//   mproc::Pool pool = ctx.Pool(4);            // ctx = get_context("spawn"); ctx.Pool(4)
//   mproc::Pool pool = mproc::get_context("mpi").Pool();   // workers are MPI ranks (mpi.hpp)
//
// Thread safety: a value type; distinct and shared objects may be used from any thread.
// Throws: get_context throws StartMethodError for an unknown name or for "forkserver" /
// "spawn" when mproc::init has not run; the "mpi" context's Pool() throws what mpi::Pool does.
#pragma once

#include <string_view>

#include "mproc/mpi.hpp"
#include "mproc/pool.hpp"
#include "mproc/pool/pool_options.hpp"
#include "mproc/start_method.hpp"

namespace mproc {

class Context {
 public:
  explicit Context(StartMethod method) : method_(method) { detail::require_start_method(method); }
  // get_context("mpi"): pools whose workers are the ranks of this mpirun job.
  static Context mpi() noexcept { return Context(); }

  // For the "mpi" context: the default method (unused: ranks are not started by mproc).
  StartMethod start_method() const noexcept { return method_; }
  bool is_mpi() const noexcept { return mpi_; }

  // A pool whose workers start with this context's method (overrides options.start_method).
  ::mproc::Pool Pool(std::size_t processes = 0) const {
    PoolOptions o;
    o.processes = processes;
    return Pool(std::move(o));
  }
  ::mproc::Pool Pool(PoolOptions options) const {
    if (mpi_) {
      return detail::PoolOverEngine::make(detail::make_mpi_engine(options),
                                          options.terminate_on_destroy);
    }
    options.start_method = method_;
    return ::mproc::Pool(options);
  }

 private:
  Context() noexcept : method_(get_start_method()), mpi_(true) {}

  StartMethod method_;
  bool mpi_ = false;
};

inline Context get_context(StartMethod method) {
  return Context(method);
}
// "fork", "forkserver", "spawn", or "mpi".
inline Context get_context(std::string_view name) {
  if (name == "mpi") return Context::mpi();
  return Context(parse_start_method(name));
}
// The context of the current default method (Python's get_context() with no argument).
inline Context get_context() {
  return Context(get_start_method());
}

}  // namespace mproc
