// Return addresses to text, with GCC's libbacktrace (libgcc-12-dev, beside the compiler): it
// reads the DWARF line tables of the executable and of each loaded library itself (inlined
// frames included), falls back to the ELF symbol table, and needs no other package.
#include <backtrace.h>
#include <dlfcn.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/worker/detail/throw_capture.hpp"

namespace mproc::detail {
namespace {

// Missing debug info is the normal case for system libraries: say nothing.
void ignore_error(void*, const char*, int) {}

backtrace_state* state() {
  // Created once per process, the first time a task fails; libbacktrace never frees it.
  // Threaded: it may be asked from several threads.
  static backtrace_state* s = backtrace_create_state(nullptr, 1, ignore_error, nullptr);
  return s;
}

struct Frame {
  std::string function;
  std::string where;  // " at file:line", or empty
};

// Called innermost inlined function first, the function the address is in last.
int on_pcinfo(void* arg, std::uintptr_t, const char* file, int line, const char* function) {
  if (function == nullptr) return 0;
  auto& frames = *static_cast<std::vector<Frame>*>(arg);
  frames.push_back({demangle(function), {}});
  if (file != nullptr)
    frames.back().where = " at " + std::string(file) + ":" + std::to_string(line);
  return 0;
}

void on_syminfo(void* arg, std::uintptr_t, const char* symbol, std::uintptr_t, std::uintptr_t) {
  if (symbol != nullptr) *static_cast<std::string*>(arg) = symbol;
}

std::string hex(std::uintptr_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%zx", static_cast<std::size_t>(v));
  return buf;
}

}  // namespace

namespace {

// The lines for one return address: the inlined functions at it, then its function.
std::vector<std::string> describe(backtrace_state* st, std::uintptr_t ra) {
  const std::uintptr_t pc = ra - 1;  // inside the call instruction, not after it
  std::vector<Frame> frames;
  std::string symbol;  // the symbol table's (mangled) name: it has the parameter types
  if (st != nullptr) {
    backtrace_pcinfo(st, pc, on_pcinfo, ignore_error, &frames);
    backtrace_syminfo(st, pc, on_syminfo, ignore_error, &symbol);
  }
  std::vector<std::string> lines;
  if (!frames.empty()) {
    // DWARF names a plain function without its scope and parameters; the symbol does not.
    if (!symbol.empty()) frames.back().function = demangle(symbol.c_str());
    for (const Frame& f : frames) lines.push_back(f.function + f.where);
    return lines;
  }
  // No debug info: the symbol table (.symtab, else the dynamic symbols dladdr sees), and the
  // module and offset, which addr2line resolves against an unstripped copy.
  Dl_info info{};
  const bool in_module = ::dladdr(reinterpret_cast<void*>(pc), &info) != 0;
  if (symbol.empty() && in_module && info.dli_sname != nullptr) symbol = info.dli_sname;
  std::string text = symbol.empty() ? hex(ra) : demangle(symbol.c_str());
  if (in_module && info.dli_fname != nullptr) {
    text += " in " + std::string(info.dli_fname) + "+" +
            hex(pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
  }
  lines.push_back(std::move(text));
  return lines;
}

// A task that fails again fails at the same places: each address is looked up once (the DWARF
// lookup and demangling are most of a failing task's extra cost). Bounded; a library unloaded
// and another mapped at its addresses would keep the old names, as libbacktrace's own tables do.
struct Cache {
  static constexpr std::size_t kMaxEntries = 4096;
  std::mutex mu;
  std::unordered_map<std::uintptr_t, std::vector<std::string>> lines;
};

}  // namespace

std::string symbolize_return_addresses(std::span<const std::uintptr_t> pcs) noexcept {
  try {
    static Cache& cache = *new Cache;  // never destroyed: a thread may still fail at exit
    backtrace_state* st = state();
    std::string out;
    std::size_t index = 0;
    std::lock_guard lock(cache.mu);
    for (const std::uintptr_t ra : pcs) {
      auto it = cache.lines.find(ra);
      if (it == cache.lines.end()) {
        if (cache.lines.size() >= Cache::kMaxEntries) cache.lines.clear();
        it = cache.lines.emplace(ra, describe(st, ra)).first;
      }
      for (const std::string& line : it->second) {
        char num[16];
        std::snprintf(num, sizeof num, "#%-3zu ", index++);
        out.append(num).append(line).push_back('\n');
      }
    }
    return out;
  } catch (...) {
    return {};
  }
}

}  // namespace mproc::detail
