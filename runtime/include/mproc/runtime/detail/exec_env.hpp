// mproc/runtime/detail/exec_env.hpp — the environment for an exec of /proc/self/exe that tells the
// new program's mproc::init what to become (a spawned worker, a Process child, a fork server).
// Internal (namespace detail).
//
// Built before the fork, so the child does nothing but exec (another thread of the program may
// hold the allocator's lock at the fork).
//
// Thread safety: distinct objects are independent; environ must not change while one is built.
#pragma once

#include <string>
#include <vector>

namespace mproc::detail {

class ExecEnv {
 public:
  // This process's environment with NAME set to `value` (any inherited NAME dropped).
  ExecEnv(const char* name, const std::string& value);
  ExecEnv(const ExecEnv&) = delete;
  ExecEnv& operator=(const ExecEnv&) = delete;

  // For execve; valid while this object lives.
  char* const* envp() const noexcept { return env_.data(); }

 private:
  std::string entry_;  // NAME=value
  std::vector<char*> env_;
};

}  // namespace mproc::detail
