#include "mproc/serialize/callable.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace mproc::detail {
namespace {

// ---- invoker registry ----------------------------------------------------------------------

struct Registry {
  std::mutex mu;
  // nullptr marks a key claimed by two different invokers.
  std::unordered_map<std::uint64_t, InvokerFn> by_key;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: used during static init and at exit
  return *r;
}

std::uint64_t fnv1a(const char* s) {
  std::uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

// ---- function locations --------------------------------------------------------------------

struct Module {
  std::string name;  // "" for the main executable
  std::uintptr_t bias = 0;
  bool found = false;
};

// Finds the loaded module whose PT_LOAD segments contain `addr`.
Module module_containing(std::uintptr_t addr) {
  struct Search {
    std::uintptr_t addr;
    Module result;
    bool first = true;
  } s{addr, {}, true};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        const bool is_main = s->first;
        s->first = false;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (s->addr >= lo && s->addr < lo + ph.p_memsz) {
            s->result.name = is_main ? std::string() : std::string(info->dlpi_name);
            s->result.bias = info->dlpi_addr;
            s->result.found = true;
            return 1;
          }
        }
        return 0;
      },
      &s);
  return s.result;
}

Module module_named(const std::string& name) {
  struct Search {
    const std::string* name;
    Module result;
    bool first = true;
  } s{&name, {}, true};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        const bool is_main = s->first;
        s->first = false;
        if ((is_main && s->name->empty()) || (!is_main && *s->name == info->dlpi_name)) {
          s->result = Module{*s->name, info->dlpi_addr, true};
          return 1;
        }
        return 0;
      },
      &s);
  return s.result;
}

// The sorted start offsets of every function the module's ELF file names (.symtab and .dynsym).
std::vector<std::uint64_t> read_function_starts(const std::string& path) {
  std::vector<std::uint64_t> starts;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return starts;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(ElfW(Ehdr)))) {
    ::close(fd);
    return starts;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return starts;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  const bool sane = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                    eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_shentsize == sizeof(ElfW(Shdr)) &&
                    eh->e_shoff + std::size_t{eh->e_shnum} * sizeof(ElfW(Shdr)) <= size;
  if (sane) {
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
      if (sh[i].sh_offset + sh[i].sh_size > size || sh[i].sh_entsize != sizeof(ElfW(Sym))) continue;
      const auto* sym = reinterpret_cast<const ElfW(Sym)*>(base + sh[i].sh_offset);
      const std::size_t n = sh[i].sh_size / sizeof(ElfW(Sym));
      for (std::size_t k = 0; k < n; ++k) {
        if (ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC && sym[k].st_shndx != SHN_UNDEF &&
            sym[k].st_value != 0) {
          starts.push_back(sym[k].st_value);
        }
      }
    }
  }
  ::munmap(map, size);
  std::sort(starts.begin(), starts.end());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  return starts;
}

struct SymbolCache {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const std::vector<std::uint64_t>>> by_module;
};

SymbolCache& symbol_cache() {
  static SymbolCache* c = new SymbolCache;
  return *c;
}

std::shared_ptr<const std::vector<std::uint64_t>> function_starts(const std::string& module) {
  SymbolCache& c = symbol_cache();
  std::lock_guard lock(c.mu);
  auto& slot = c.by_module[module];
  if (!slot) {
    slot = std::make_shared<const std::vector<std::uint64_t>>(
        read_function_starts(module.empty() ? std::string("/proc/self/exe") : module));
  }
  return slot;
}

// The main executable's range, cached: most task functions live there and locate runs on
// every submission.
struct MainRange {
  std::uintptr_t lo = UINTPTR_MAX, hi = 0, bias = 0;
};

const MainRange& main_range() {
  static const MainRange r = [] {
    MainRange m;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) -> int {
          auto* m = static_cast<MainRange*>(data);
          m->bias = info->dlpi_addr;
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
            m->lo = std::min<std::uintptr_t>(m->lo, info->dlpi_addr + ph.p_vaddr);
            m->hi = std::max<std::uintptr_t>(m->hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
          }
          return 1;  // the first entry is the main executable
        },
        &m);
    return m;
  }();
  return r;
}

}  // namespace

void warm_callable_tables() noexcept {
  try {
    (void)main_range();
    (void)function_starts(std::string());
  } catch (...) {
    // A worker will try again, and report, when it first needs them.
  }
}

std::uint64_t register_invoker(const char* mangled_name, InvokerFn fn) noexcept {
  const std::uint64_t key = fnv1a(mangled_name);
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto [it, inserted] = r.by_key.emplace(key, fn);
  if (!inserted && it->second != fn) it->second = nullptr;
  return key;
}

InvokerFn find_invoker(std::uint64_t key) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.by_key.find(key);
  if (it == r.by_key.end()) {
    throw SerializationError("unknown callable: no invoker is registered under key " +
                             std::to_string(key) + " (is the worker running the same executable?)");
  }
  if (it->second == nullptr) {
    throw SerializationError("ambiguous callable: two invokers share key " + std::to_string(key));
  }
  return it->second;
}

void encode_function_location(Bytes& out, const void* fn) {
  const auto addr = reinterpret_cast<std::uintptr_t>(fn);
  const MainRange& m = main_range();
  Module mod;
  if (addr >= m.lo && addr < m.hi) {
    mod = Module{std::string(), m.bias, true};
  } else {
    mod = module_containing(addr);
  }
  if (!mod.found) {
    throw SerializationError(
        "cannot name the function at this address: it lies in no loaded module");
  }
  WireOutputArchive ar(out);
  ar(mod.name, static_cast<std::uint64_t>(addr - mod.bias));
}

void* decode_function_location(WireInputArchive& in) {
  std::string module;
  std::uint64_t offset = 0;
  in(module, offset);
  std::uintptr_t bias = 0;
  if (module.empty()) {
    bias = main_range().bias;
  } else {
    const Module mod = module_named(module);
    if (!mod.found) {
      throw SerializationError("unknown callable: module '" + module + "' is not loaded here");
    }
    bias = mod.bias;
  }
  const auto starts = function_starts(module);
  if (!std::binary_search(starts->begin(), starts->end(), offset)) {
    throw SerializationError("unknown callable: no function starts at offset " +
                             std::to_string(offset) + " of " +
                             (module.empty() ? std::string("the executable") : module) +
                             " (a stripped binary has no symbol table to check against)");
  }
  return reinterpret_cast<void*>(bias + offset);
}

void invoke_payload(std::span<const char> payload, Bytes& out, std::size_t max_out) {
  WireInputArchive in(payload);
  std::uint64_t key = 0;
  std::uint8_t has_target = 0;
  in(key, has_target);
  const InvokerFn invoker = find_invoker(key);
  void* target = has_target != 0 ? decode_function_location(in) : nullptr;
  std::uint32_t count = 0;
  in(count);
  InvokeContext ctx{in, out, target, count, max_out};
  invoker(ctx);
  if (in.remaining() != 0) {
    throw SerializationError("corrupt task: " + std::to_string(in.remaining()) +
                             " unread bytes after the last argument");
  }
}

}  // namespace mproc::detail
