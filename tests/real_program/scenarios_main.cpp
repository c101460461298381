// The scenario helper's main(): mproc::init first (as README tells users; spawned workers and
// the fork server need it), then the scenario named by argv[1]. The start method comes from
// MPROC_START_METHOD, as in the other suites.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include <mproc/init.hpp>

#include "scenario.hpp"

namespace mproc_scenario {
namespace {
std::map<std::string, Fn>& table() {
  static std::map<std::string, Fn> t;
  return t;
}
}  // namespace

int add(const char* name, Fn fn) {
  table()[name] = fn;
  return 0;
}
}  // namespace mproc_scenario

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
    return 2;
  }
  auto& t = mproc_scenario::table();
  const auto it = t.find(argv[1]);
  if (it == t.end()) {
    std::fprintf(stderr, "no scenario named %s\n", argv[1]);
    return 2;
  }
  return it->second();
}
