#include "mproc/runtime/detail/owner.hpp"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace mproc::detail {
namespace {

std::atomic<pid_t> g_pid{0};

void refresh_in_child() noexcept {
  g_pid.store(::getpid(), std::memory_order_relaxed);
}

// Registered during static initialisation, before the program can fork.
[[maybe_unused]] const pid_t g_registered = current_pid();

// Abandoned objects live here, reachable from a global. A child abandons a handful at most;
// past the arena's end each one overwrites the last (never destroying it: that is what
// abandoning means anyway).
constexpr std::size_t kArenaBytes = 8192;
constexpr std::size_t kScratchBytes = 64;
alignas(16) unsigned char g_arena[kArenaBytes];
alignas(16) unsigned char g_scratch[kScratchBytes];
std::atomic<std::size_t> g_used{0};

}  // namespace

pid_t current_pid() noexcept {
  pid_t p = g_pid.load(std::memory_order_relaxed);
  if (p == 0) {
    static const int registered = ::pthread_atfork(nullptr, nullptr, &refresh_in_child);
    (void)registered;
    p = ::getpid();
    g_pid.store(p, std::memory_order_relaxed);
  }
  return p;
}

std::string not_owner_message(const char* what, pid_t owner) {
  return std::string("the ") + what + " belongs to process " + std::to_string(owner) +
         " (this is process " + std::to_string(current_pid()) +
         ", a child made with fork()): make a new one in this process";
}

void* abandon_storage(std::size_t size) noexcept {
  size = (size + 15) & ~std::size_t{15};
  const std::size_t at = g_used.fetch_add(size, std::memory_order_relaxed);
  if (at + size <= kArenaBytes) return g_arena + at;
  return size <= kScratchBytes ? g_scratch : g_arena;
}

}  // namespace mproc::detail
