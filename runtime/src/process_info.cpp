#include "mproc/process_info.hpp"

#include "mproc/process.hpp"

#include <sched.h>
#include <unistd.h>

#include <vector>

namespace mproc {
namespace {

std::string& process_name() {
  static std::string* name = new std::string("MainProcess");  // outlives static destructors
  return *name;
}

std::vector<std::string>& program_args() {
  static std::vector<std::string>* args = new std::vector<std::string>;
  return *args;
}

}  // namespace

const std::string& ProcessInfo::name() const noexcept {
  return process_name();
}
pid_t ProcessInfo::pid() const noexcept {
  return ::getpid();
}
bool ProcessInfo::daemon() const noexcept {
  return current_process_is_daemon();
}

const ProcessInfo& current_process() noexcept {
  static const ProcessInfo info;
  return info;
}

std::size_t cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

namespace detail {
void record_init(int argc, char** argv) {
  auto& args = program_args();
  args.assign(argv, argv + argc);
  process_name() = "MainProcess";
}

bool init_called() noexcept {
  return !program_args().empty();
}

const std::string& program_path() noexcept {
  static const std::string empty;
  return program_args().empty() ? empty : program_args().front();
}

void set_process_name(std::string name) {
  process_name() = std::move(name);
}
}  // namespace detail

}  // namespace mproc
