#include "mproc/runtime/detail/exec_env.hpp"

#include <cstring>

extern char** environ;

namespace mproc::detail {

ExecEnv::ExecEnv(const char* name, const std::string& value)
    : entry_(std::string(name) + "=" + value) {
  const std::size_t prefix = std::strlen(name);
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, name, prefix) == 0 && (*e)[prefix] == '=') continue;
    env_.push_back(*e);
  }
  env_.push_back(entry_.data());
  env_.push_back(nullptr);
}

}  // namespace mproc::detail
