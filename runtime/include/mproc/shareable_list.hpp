// mproc/shareable_list.hpp — Python's multiprocessing.shared_memory.ShareableList and
// multiprocessing.managers.SharedMemoryManager.
//
//   mproc::ShareableList<int> a({1, 2, 3});             // a = ShareableList([1, 2, 3])
//   auto b = mproc::ShareableList<int>::attach(a.name());  // b = ShareableList(name=a.shm.name)
//   b.set(0, 42);  a.get(0) == 42;                      // b[0] = 42; a[0] == 42
//   mproc::ShareableList<std::string> s({"ab", "c"}, 16);  // strings of up to 16 bytes
//
//   mproc::SharedMemoryManager smm;                     // with SharedMemoryManager() as smm:
//   auto shm = smm.SharedMemory(1024);                  //   shm = smm.SharedMemory(1024)
//   auto sl = smm.ShareableList(std::vector<double>{1.5, 2.5});  //   sl = smm.ShareableList([...])
//   smm.shutdown();                                     // (end of with) unlinks both
//
// ShareableList<T>: a fixed-length list of one element type in one named block — bool, any
// integer or floating-point type of at most 8 bytes, or std::string of at most max_length()
// bytes (fixed when the list is made: the longest initial value rounded up to 8, or a given
// bound; rounded up to a multiple of 8). Unlike Python's, one element type per list (no None, no
// mixing). The block starts with a 64-byte header (a magic number, the element type, the count, the
// slot size), so attach() refuses a block that is not a list of this T. It crosses to Processes and
// tasks by name, as a SharedMemory (the receiver attaches on decode). Lifetime, tracking and
// unlinking are those of SharedMemory (see named_shared_memory.hpp): shm() is the block.
//
// SharedMemoryManager: makes blocks and lists and unlinks every one it made at shutdown() or
// destruction (those already unlinked excepted). Python's runs a server process; this one keeps
// the names in the process that made it — the blocks themselves are tracked (track = true) so
// they are unlinked even if that process is SIGKILLed. It acts only in that process: in a fork
// child its calls throw SharedMemoryError (EPERM) and its destructor unlinks nothing.
//
// Thread safety: a ShareableList's elements are not locked (as Python's): numbers and bools
// are read and written atomically (std::atomic_ref, relaxed); a string element is not — two
// processes writing one string slot, or one writing while another reads, need a Lock.
// SharedMemoryManager: all members may be called from any thread.
//
// Throws: SharedMemoryError (see named_shared_memory.hpp; EINVAL when attach() finds a block
// that is not a ShareableList<T>); std::out_of_range for an index >= size();
// std::length_error for a string longer than max_length().
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/named_shared_memory.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc {

template <class T>
concept ShareableElement = std::is_same_v<T, std::string> || std::is_same_v<T, bool> ||
    ((std::is_integral_v<T> || std::is_floating_point_v<T>)&&sizeof(T) <= 8 &&
     !std::is_const_v<T> && !std::is_volatile_v<T>);

template <ShareableElement T>
class ShareableList {
  static constexpr bool kString = std::is_same_v<T, std::string>;

 public:
  static constexpr std::size_t kHeaderBytes = 64;

  // An empty handle (filled in by decoding or assignment).
  ShareableList() = default;
  // A new list holding `values`, in a block named `name` (empty: a random name).
  explicit ShareableList(const std::vector<T>& values, std::string_view name = {},
                         bool track = true) requires(!kString)
      : ShareableList(values, 0, name, track, 0) {}
  ShareableList(std::initializer_list<T> values) requires(!kString)
      : ShareableList(std::vector<T>(values), 0, std::string_view{}, true, 0) {}
  // Strings: each slot holds up to max_length bytes (0: the longest value, rounded up to 8).
  explicit ShareableList(const std::vector<std::string>& values, std::size_t max_length = 0,
                         std::string_view name = {}, bool track = true) requires(kString)
      : ShareableList(values, max_length, name, track, 0) {}

  // The list in the existing block `name`. Throws SharedMemoryError (ENOENT; EINVAL when the
  // block is not a ShareableList<T>).
  static ShareableList attach(std::string_view name) {
    ShareableList l;
    l.shm_ = SharedMemory::attach(name);
    l.check_header();
    return l;
  }

  std::size_t size() const noexcept { return count_; }
  // The longest string a slot holds (0 for numbers).
  std::size_t max_length() const noexcept { return kString ? slot_ - 8 : 0; }
  const std::string& name() const noexcept { return shm_.name(); }
  const SharedMemory& shm() const noexcept { return shm_; }

  // Python's a[i] and a[i] = v. Throw std::out_of_range (and std::length_error for a string
  // longer than max_length()).
  T get(std::size_t i) const {
    std::byte* p = slot(i);
    if constexpr (kString) {
      std::uint64_t len = 0;
      std::memcpy(&len, p, sizeof len);
      if (len > max_length()) len = max_length();  // a torn write never reads out of the slot
      return std::string(reinterpret_cast<const char*>(p + 8), static_cast<std::size_t>(len));
    } else {
      return std::atomic_ref<T>(*reinterpret_cast<T*>(p)).load(std::memory_order_relaxed);
    }
  }
  T operator[](std::size_t i) const { return get(i); }
  void set(std::size_t i, const T& v) const {
    if constexpr (kString) {
      std::byte* p = slot(i);
      if (v.size() > max_length()) {
        throw std::length_error("mproc::ShareableList: a string of " + std::to_string(v.size()) +
                                " bytes does not fit a slot of " + std::to_string(max_length()));
      }
      const std::uint64_t len = v.size();
      std::memcpy(p + 8, v.data(), v.size());
      std::memcpy(p, &len, sizeof len);
    } else {
      std::atomic_ref<T>(*reinterpret_cast<T*>(slot(i))).store(v, std::memory_order_relaxed);
    }
  }
  std::vector<T> to_vector() const {
    std::vector<T> out;
    const std::size_t n = size();
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(get(i));
    return out;
  }
  // Python's count(value) and index(value) (index: std::out_of_range when absent).
  std::size_t count(const T& v) const {
    std::size_t c = 0;
    for (std::size_t i = 0, n = size(); i < n; ++i) c += get(i) == v ? 1 : 0;
    return c;
  }
  std::size_t index(const T& v) const {
    for (std::size_t i = 0, n = size(); i < n; ++i)
      if (get(i) == v) return i;
    throw std::out_of_range("mproc::ShareableList::index: value not in list");
  }

  template <class Archive>
  void save(Archive& ar) const {
    ar(shm_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(shm_);
    try {
      check_header();
    } catch (const SharedMemoryError& e) {
      throw SerializationError(e.what());
    }
  }

 private:
  struct Header {
    std::uint64_t magic;
    std::uint64_t type;  // kind letter << 8 | sizeof(element)
    std::uint64_t count;
    std::uint64_t slot;  // bytes per element
  };
  static constexpr std::uint64_t kMagic = 0x314c53434f52504dull;  // "MPROCSL1"
  static constexpr std::uint64_t type_code() {
    char kind = 's';
    if constexpr (std::is_same_v<T, bool>) {
      kind = 'b';
    } else if constexpr (std::is_floating_point_v<T>) {
      kind = 'f';
    } else if constexpr (std::is_integral_v<T>) {
      kind = std::is_signed_v<T> ? 'i' : 'u';
    }
    return (static_cast<std::uint64_t>(kind) << 8) | (kString ? 0 : sizeof(T));
  }

  ShareableList(const std::vector<T>& values, std::size_t max_length, std::string_view name,
                bool track, int) {
    std::size_t slot_bytes = sizeof(T);
    if constexpr (kString) {
      if (max_length == 0) {
        for (const auto& v : values) max_length = std::max(max_length, v.size());
      }
      const std::size_t capacity = std::max<std::size_t>(8, (max_length + 7) / 8 * 8);
      for (const auto& v : values) {
        if (v.size() > capacity) {
          throw std::length_error("mproc::ShareableList: a string of " + std::to_string(v.size()) +
                                  " bytes is longer than max_length " + std::to_string(capacity));
        }
      }
      slot_bytes = 8 + capacity;  // an 8-byte length, then the bytes
    }
    shm_ = SharedMemory::create(kHeaderBytes + slot_bytes * std::max<std::size_t>(values.size(), 1),
                                name, track);
    const Header h{kMagic, type_code(), values.size(), slot_bytes};
    std::memcpy(shm_.data(), &h, sizeof h);
    count_ = values.size();
    slot_ = slot_bytes;
    for (std::size_t i = 0; i < values.size(); ++i) set(i, values[i]);
  }

  // Reads the header once: the count and slot size are kept here, so a process that scribbles
  // on the header later cannot make this one index outside the block.
  void check_header() {
    if (shm_.size() <= kHeaderBytes) bad("too small");
    Header h{};
    std::memcpy(&h, shm_.data(), sizeof h);
    if (h.magic != kMagic) bad("not a ShareableList");
    if (h.type != type_code()) bad("a list of another element type");
    if ((kString && (h.slot < 16 || h.slot % 8 != 0)) || (!kString && h.slot != sizeof(T)) ||
        h.count > (shm_.size() - kHeaderBytes) / h.slot) {
      bad("a corrupt header");
    }
    count_ = static_cast<std::size_t>(h.count);
    slot_ = static_cast<std::size_t>(h.slot);
  }
  [[noreturn]] void bad(const char* why) const {
    throw SharedMemoryError("mproc: shared memory '" + shm_.name() +
                                "' is not a ShareableList of this element type (" + why + ")",
                            EINVAL);
  }
  std::byte* slot(std::size_t i) const {
    if (i >= size()) {
      throw std::out_of_range("mproc::ShareableList: index " + std::to_string(i) +
                              " out of range (size " + std::to_string(size()) + ")");
    }
    return shm_.data() + kHeaderBytes + i * slot_;
  }

  SharedMemory shm_;
  std::size_t count_ = 0;
  std::size_t slot_ = kString ? 8 : sizeof(T);  // bytes per element
};

class SharedMemoryManager {
 public:
  SharedMemoryManager() = default;
  SharedMemoryManager(const SharedMemoryManager&) = delete;
  SharedMemoryManager& operator=(const SharedMemoryManager&) = delete;
  ~SharedMemoryManager() {
    if (!owner_.here()) return;  // a copy in a fork child: the blocks are the parent's
    shutdown();
  }

  // Python's smm.SharedMemory(size): a new tracked block with a random name.
  ::mproc::SharedMemory SharedMemory(std::size_t size) {
    check_owner();
    auto shm = ::mproc::SharedMemory::create(size);
    remember(shm.name());
    return shm;
  }
  // Python's smm.ShareableList(sequence).
  template <ShareableElement T>
  ::mproc::ShareableList<T> ShareableList(const std::vector<T>& values) requires(
      !std::is_same_v<T, std::string>) {
    check_owner();
    ::mproc::ShareableList<T> l(values);
    remember(l.name());
    return l;
  }
  ::mproc::ShareableList<std::string> ShareableList(const std::vector<std::string>& values,
                                                    std::size_t max_length = 0) {
    check_owner();
    ::mproc::ShareableList<std::string> l(values, max_length);
    remember(l.name());
    return l;
  }

  // The names of the blocks made and not yet unlinked by shutdown().
  std::vector<std::string> names() const {
    check_owner();
    std::lock_guard lock(mu_);
    return names_;
  }
  // Unlinks every block this manager made (a block someone else unlinked already is skipped).
  // The handles stay usable (the memory lives while mapped); nobody can attach any more.
  void shutdown() noexcept {
    if (!owner_.here()) return;
    std::vector<std::string> names;
    {
      std::lock_guard lock(mu_);
      names.swap(names_);
    }
    for (const auto& n : names) {
      try {
        detail::shm_unlink(n);
      } catch (...) {  // already unlinked by a user: nothing left to do
      }
    }
  }

 private:
  void check_owner() const {
    if (!owner_.here()) {
      throw SharedMemoryError(detail::not_owner_message("SharedMemoryManager", owner_.pid()),
                              EPERM);
    }
  }
  void remember(const std::string& name) {
    std::lock_guard lock(mu_);
    names_.push_back(name);
  }

  detail::OwnerPid owner_;
  mutable std::mutex mu_;
  std::vector<std::string> names_;
};

}  // namespace mproc
