// The registry of Process subclasses that can cross an exec (MPROC_REGISTER_PROCESS).
#include <map>
#include <mutex>
#include <string>

#include "mproc/process.hpp"

namespace mproc::detail {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, ProcessClass, std::less<>> classes;
};

// Built on first use: registrations run during static initialisation, in any order.
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: a static's destructor may still start one
  return *r;
}

}  // namespace

bool register_process_class(const std::type_info& type, ProcessClass c) noexcept {
  try {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    r.classes.insert_or_assign(type.name(), c);
    return true;
  } catch (...) {
    return false;  // out of memory at static initialisation: start() says it is unregistered
  }
}

const ProcessClass* find_process_class(const std::string& type_name) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  const auto it = r.classes.find(type_name);
  return it == r.classes.end() ? nullptr : &it->second;
}

}  // namespace mproc::detail
