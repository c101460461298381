#include "mproc/start_method.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "mproc/errors.hpp"
#include "mproc/process_info.hpp"

namespace mproc {
namespace {

StartMethod from_environment() {
  const char* name = std::getenv("MPROC_START_METHOD");
  if (name == nullptr || *name == '\0') return StartMethod::kFork;
  try {
    return parse_start_method(name);
  } catch (const StartMethodError&) {
    return StartMethod::kFork;  // a typo in the environment must not break every program
  }
}

std::atomic<StartMethod>& current() {
  static std::atomic<StartMethod> m{from_environment()};
  return m;
}

}  // namespace

std::string_view to_string(StartMethod m) noexcept {
  switch (m) {
    case StartMethod::kFork:
      return "fork";
    case StartMethod::kForkserver:
      return "forkserver";
    case StartMethod::kSpawn:
      return "spawn";
  }
  return "fork";
}

StartMethod parse_start_method(std::string_view name) {
  for (StartMethod m : {StartMethod::kFork, StartMethod::kForkserver, StartMethod::kSpawn}) {
    if (to_string(m) == name) return m;
  }
  throw StartMethodError("unknown start method '" + std::string(name) +
                         "' (expected fork, forkserver or spawn)");
}

void set_start_method(StartMethod m) {
  detail::require_start_method(m);
  current().store(m);
}

void set_start_method(std::string_view name) {
  set_start_method(parse_start_method(name));
}

StartMethod get_start_method() noexcept {
  return current().load();
}

namespace detail {
void require_start_method(StartMethod m) {
  if (m == StartMethod::kFork || init_called()) return;
  throw StartMethodError("start method '" + std::string(to_string(m)) +
                         "' needs mproc::init(argc, argv) as the first statement of main(): "
                         "that is where its workers start");
}
}  // namespace detail

}  // namespace mproc
