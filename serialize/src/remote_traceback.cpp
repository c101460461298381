#include <mutex>
#include <unordered_map>

#include "mproc/errors.hpp"
#include "traced_exception.hpp"

namespace mproc {
namespace detail {
namespace {

struct Registry {
  std::mutex mu;
  std::unordered_map<const void*, std::string> by_object;
};

// Never destroyed: an exception_ptr in a static may outlive any static of ours.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

void register_traceback(const void* object, std::string traceback) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.by_object.insert_or_assign(object, std::move(traceback));
}

std::string find_traceback(const void* object) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  const auto it = r.by_object.find(object);
  return it == r.by_object.end() ? std::string() : it->second;
}

void forget_traceback(const void* object) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.by_object.erase(object);
}

}  // namespace detail

std::string remote_traceback(const std::exception& e) {
  if (const auto* r = dynamic_cast<const RemoteError*>(&e)) return r->traceback();
  // The registry is keyed by the thrown object, the most derived one.
  return detail::find_traceback(dynamic_cast<const void*>(&e));
}

}  // namespace mproc
