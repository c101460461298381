#include "mproc/pool/detail/engine_state.hpp"

#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {

void throw_pool_closed() {
  throw PoolStateError("the pool is closed: no new tasks can be submitted");
}

void EngineState::check_open_locked() const {
  if (terminated_) throw PoolStateError("the pool has been terminated");
  if (closed_) throw_pool_closed();
  if (broken_) std::rethrow_exception(broken_);
}

void EngineState::require_closed_locked(const char* who) const {
  if (!closed_ && !terminated_) {
    throw PoolStateError(std::string(who) + "::join(): call close() or terminate() first");
  }
}

}  // namespace mproc::detail
