#include "mproc/serialize/detail/callable.hpp"

#include "mproc/serialize/detail/eh_frame_hdr.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <utility>
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

// What the module's ELF file says about its functions: the STT_FUNC symbols of .symtab and
// .dynsym, and its code sections other than the PLT (section headers survive strip).
struct SymbolStarts {
  std::vector<std::uint64_t> starts;
  bool has_symtab = false;  // false for a stripped file (or one that could not be read)
  std::vector<std::pair<std::uint64_t, std::uint64_t>> code;  // [begin, end) offsets
};

// The linker's stubs: .plt's first entry calls the lazy-binding resolver with whatever is on
// the stack. The linker gives each PLT section an FDE (--ld-generated-unwind-info) but no
// symbol, so .eh_frame_hdr lists their starts.
bool is_plt_section(const char* name) {
  return std::strncmp(name, ".plt", 4) == 0 || std::strcmp(name, ".iplt") == 0;
}

SymbolStarts read_symbol_starts(const std::string& path) {
  SymbolStarts out;
  auto& starts = out.starts;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(ElfW(Ehdr)))) {
    ::close(fd);
    return out;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return out;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  const bool sane = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                    eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_shentsize == sizeof(ElfW(Shdr)) &&
                    eh->e_shoff + std::size_t{eh->e_shnum} * sizeof(ElfW(Shdr)) <= size;
  if (sane) {
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(base + eh->e_shoff);
    const ElfW(Shdr)* names = eh->e_shstrndx < eh->e_shnum ? &sh[eh->e_shstrndx] : nullptr;
    if (names != nullptr && names->sh_offset + names->sh_size <= size && names->sh_size > 0 &&
        base[names->sh_offset + names->sh_size - 1] == '\0') {
      for (unsigned i = 0; i < eh->e_shnum; ++i) {
        if (sh[i].sh_type != SHT_PROGBITS || !(sh[i].sh_flags & SHF_EXECINSTR)) continue;
        if (sh[i].sh_name >= names->sh_size) continue;
        if (is_plt_section(
                reinterpret_cast<const char*>(base + names->sh_offset + sh[i].sh_name))) {
          continue;
        }
        out.code.emplace_back(sh[i].sh_addr, sh[i].sh_addr + sh[i].sh_size);
      }
    }
    for (unsigned i = 0; i < eh->e_shnum; ++i) {
      if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
      if (sh[i].sh_offset + sh[i].sh_size > size || sh[i].sh_entsize != sizeof(ElfW(Sym))) continue;
      if (sh[i].sh_type == SHT_SYMTAB) out.has_symtab = true;
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
  return out;
}

// The code starts in the .eh_frame_hdr search table of a loaded module (the main executable for
// ""), read from its mapped image: PT_GNU_EH_FRAME lies in a loaded segment.
std::vector<std::uint64_t> eh_frame_starts(const std::string& module) {
  struct Search {
    const std::string* name;
    std::vector<std::uint64_t> starts;
    bool first = true;
    std::exception_ptr error;
  } s{&module, {}, true, nullptr};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        const bool is_main = s->first;
        s->first = false;
        if (!((is_main && s->name->empty()) || (!is_main && *s->name == info->dlpi_name))) {
          return 0;
        }
        const ElfW(Phdr)* hdr = nullptr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME) hdr = &info->dlpi_phdr[i];
        }
        if (hdr == nullptr) return 1;
        // Read it only where a loaded segment backs it with file bytes.
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_R)) continue;
          if (hdr->p_vaddr >= ph.p_vaddr && hdr->p_vaddr - ph.p_vaddr <= ph.p_filesz &&
              hdr->p_memsz <= ph.p_filesz - (hdr->p_vaddr - ph.p_vaddr)) {
            const auto* bytes =
                reinterpret_cast<const unsigned char*>(info->dlpi_addr + hdr->p_vaddr);
            // No exception may unwind through the loader's frames (it holds its lock).
            try {
              s->starts = eh_frame_hdr_function_starts(
                  std::span<const unsigned char>(bytes, hdr->p_memsz), hdr->p_vaddr);
            } catch (...) {
              s->error = std::current_exception();
            }
            break;
          }
        }
        return 1;
      },
      &s);
  if (s.error) std::rethrow_exception(s.error);
  return std::move(s.starts);
}

// The sorted start offsets of the module's functions. The symbol table comes first and, when
// the file has one, alone: it names exactly the functions (STT_FUNC), whereas .eh_frame_hdr
// lists the start of every FDE, and not every FDE begins a function. A union would widen what
// an unstripped binary accepts for no gain (a function with an FDE has a symbol too). Without
// .symtab, .eh_frame_hdr's starts are added to .dynsym's (strip keeps both: unwinding and
// dynamic linking need them), minus those outside the file's code sections or in the PLT,
// whose FDEs begin linker stubs. What remains beyond function entries is each .cold fragment
// (GCC's hot/cold splitting gives foo.cold its own FDE), which .symtab also types STT_FUNC,
// so it is accepted today already, and any FDE that hand-written assembly opens mid-routine.
// So an accepted offset is still the start of a unit of compiled code, never an arbitrary
// address. An unreadable file gives no section headers and so nothing from .eh_frame_hdr
// (the PLT could not be told apart). A function built without unwind tables
// (-fno-asynchronous-unwind-tables) is not found in a stripped binary.
std::vector<std::uint64_t> read_function_starts(const std::string& module) {
  SymbolStarts sym = read_symbol_starts(module.empty() ? std::string("/proc/self/exe") : module);
  std::vector<std::uint64_t> starts = std::move(sym.starts);
  if (!sym.has_symtab && !sym.code.empty()) {
    std::sort(sym.code.begin(), sym.code.end());
    for (const std::uint64_t at : eh_frame_starts(module)) {
      auto it = std::upper_bound(sym.code.begin(), sym.code.end(),
                                 std::pair{at, std::numeric_limits<std::uint64_t>::max()});
      if (it != sym.code.begin() && at < std::prev(it)->second) starts.push_back(at);
    }
  }
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
    slot = std::make_shared<const std::vector<std::uint64_t>>(read_function_starts(module));
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

namespace {

// DWARF exception-header pointer encodings (LSB Core, "DWARF Extensions"): the low nibble
// says how the value is stored, bits 4-6 what it is relative to, bit 7 that it is indirect.
constexpr unsigned char kPeOmit = 0xff;
constexpr unsigned char kPeFormatMask = 0x0f, kPeApplicationMask = 0x70;
constexpr unsigned char kPeAbsptr = 0x00, kPeUdata2 = 0x02, kPeUdata4 = 0x03, kPeUdata8 = 0x04,
                        kPeSdata2 = 0x0a, kPeSdata4 = 0x0b, kPeSdata8 = 0x0c;
constexpr unsigned char kPeDatarel = 0x30, kPeAligned = 0x50;

// Bytes a value of this fixed-size format takes; 0 for formats not handled (the LEB128s).
std::size_t encoded_size(unsigned char enc) {
  switch (enc & kPeFormatMask) {
    case kPeAbsptr:
      return sizeof(void*);
    case kPeUdata2:
    case kPeSdata2:
      return 2;
    case kPeUdata4:
    case kPeSdata4:
      return 4;
    case kPeUdata8:
    case kPeSdata8:
      return 8;
    default:
      return 0;
  }
}

}  // namespace

std::vector<std::uint64_t> eh_frame_hdr_function_starts(std::span<const unsigned char> hdr,
                                                        std::uint64_t hdr_offset) {
  // Anything unexpected refuses the whole table: a partial one would be no safer.
  std::vector<std::uint64_t> starts;
  if (hdr.size() < 4 || hdr[0] != 1) return starts;
  const unsigned char ptr_enc = hdr[1], count_enc = hdr[2], table_enc = hdr[3];
  std::size_t at = 4;
  if (ptr_enc != kPeOmit) {  // eh_frame_ptr: unused here, only skipped
    const std::size_t n = encoded_size(ptr_enc);
    if (n == 0 || (ptr_enc & kPeApplicationMask) == kPeAligned) return starts;
    at += n;
  }
  // The search table is there only with a count; its entries are the only layout the linkers
  // emit: (initial location, FDE address) as signed 4-byte offsets from the header's start.
  if (count_enc == kPeOmit || table_enc != (kPeDatarel | kPeSdata4)) return starts;
  const std::size_t count_size = encoded_size(count_enc);
  if (count_size == 0 || (count_enc & ~kPeFormatMask) != 0) return starts;
  if (hdr.size() - std::min(at, hdr.size()) < count_size) return starts;
  std::uint64_t count = 0;
  switch (count_size) {
    case 2: {
      std::uint16_t v;
      std::memcpy(&v, hdr.data() + at, 2);
      count = v;
      break;
    }
    case 4: {
      std::uint32_t v;
      std::memcpy(&v, hdr.data() + at, 4);
      count = v;
      break;
    }
    default:
      std::memcpy(&count, hdr.data() + at, 8);
      break;
  }
  at += count_size;
  const bool is_signed = (count_enc & kPeFormatMask) >= kPeSdata2;
  const std::uint64_t sign_bit = std::uint64_t{1} << (8 * count_size - 1);
  if (is_signed && (count & sign_bit) != 0) return starts;
  constexpr std::size_t kEntry = 8;
  if (count > (hdr.size() - at) / kEntry) return starts;
  starts.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    std::int32_t location;
    std::memcpy(&location, hdr.data() + at + i * kEntry, 4);
    if (location < 0 && static_cast<std::uint64_t>(-std::int64_t{location}) > hdr_offset) {
      return {};  // before the module's base: not this module's code
    }
    starts.push_back(hdr_offset + static_cast<std::uint64_t>(std::int64_t{location}));
  }
  return starts;
}

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
                             " (neither its symbol table nor, when stripped, its .eh_frame_hdr "
                             "lists one)");
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
