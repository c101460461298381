// mproc/named_shared_memory.hpp — named shared memory: Python's
// multiprocessing.shared_memory.SharedMemory, and SharedSpan, a slice of a block that crosses
// to a task as a handle (a name, an offset and a length), never as a copy of the data.
//
//   auto shm = mproc::SharedMemory::create(1 << 30);   // shm = SharedMemory(create=True, size=...)
//   std::span<double> xs = shm.as<double>();           // np.ndarray(..., buffer=shm.buf)
//   auto b = mproc::SharedMemory::attach(shm.name());  // SharedMemory(name=shm.name)
//   double s = 0;                                      // the data never crosses the wire:
//   for (double part : pool.map(sum_slice, mproc::slices_of<const double>(shm, 8))) s += part;
//   shm.close(); shm.unlink();                         // shm.close(); shm.unlink()
//
//   double sum_slice(mproc::SharedSpan<const double> xs) {   // runs in a worker
//     return std::accumulate(xs.begin(), xs.end(), 0.0);
//   }
//
// A block is a file in /dev/shm (shm_open), so any program — another mproc program, Python's
// SharedMemory(name=...), a C program — attaches to it by name. name() has no leading '/'
// (as Python's). Blocks are zero-filled at creation and backed by memory then (a full /dev/shm
// is a SharedMemoryError at create, not a SIGBUS later).
//
// Handles. A SharedMemory is a cheap shared handle: copies share one mapping of the block in
// this process, which is unmapped when the last of them is closed or destroyed. close() ends
// this handle's access (buf() then throws), as Python's close() ends one instance's. Across
// processes a handle travels by name (its name and size: a few dozen bytes on the wire): the
// receiving process attaches on decode — a Process target's argument, a pool task's argument or
// result, under fork, forkserver and spawn alike. Decoded handles share one mapping per block per
// process (see SharedSpan): a worker maps a block once, not once per task. A decoded handle whose
// block is gone, or smaller than the sender's, is a SerializationError in the receiver.
//
// Lifetime ("who unlinks"). Destroying or closing a handle never unlinks: the name lives until
// unlink() (any process may call it, once), as in Python. With track = true (the default) the
// creator registers the name with its tracker: a small process, started on first use from this
// program's executable (so main must begin with mproc::init), which unlinks every block its
// clients created and did not unlink once all of them have ended — normally, by exception, or
// by SIGKILL. A Process started with fork shares its parent's tracker, so a block it made is
// unlinked when both have ended; a pool worker (any start method) and a spawned or forkserver
// Process have their own, so a tracked block made there is unlinked when that process ends even
// if its parent holds a handle (the mapping stays valid; attaching by name then fails): make
// blocks that must outlive a worker in the parent, or with track = false and an explicit
// unlink(). (Python hands its tracker down to spawned children; mproc does not, yet.)
// track = false leaves the block for another program, which must unlink it. The tracker writes
// one line to stderr per block it had to unlink (Python warns too). unlink() tells this
// process's tracker; a block unlinked by a process with another tracker (a spawned worker) is
// looked for again by the creator's tracker at its end, which unlinks a name only while it
// still names the very file that was created (device and inode): a block re-created under the
// same name by someone else is left alone (Python's tracker would unlink it).
//
// SharedSpan<T> (T trivially copyable; SharedSpan<const T> for read-only use) is a block name,
// an element offset and a count, plus this process's mapping. Constructing one out of range is
// std::out_of_range in the process that constructs it — before any task is sent. Decoding maps
// the block through a per-process cache keyed by name (which keeps the last 8 blocks mapped;
// checked against the file on each decode, so a block unlinked and re-created under the same
// name is never confused with the old one), so a pool worker maps each block once.
// slices_of<T>(shm, n) cuts a block (or a span) into n near-equal spans.
//
// What the kernel does not protect against: a block truncated by another program while mapped
// here (any access past its new end is SIGBUS), and two processes writing one element at once
// (a data race: synchronise with a Lock, a Barrier, or atomic_ref on aligned elements).
//
// Thread safety: distinct handles may be used from any threads; one handle's const members may
// be called concurrently, close() and assignment must not race with other uses of that handle.
// The memory itself is not synchronised.
//
// Throws: SharedMemoryError (code(): ENOENT for no such block, EEXIST for a name in use, EINVAL
// for a bad name or size or an attach asking for more bytes than the block has, EPERM for
// track = true in a program without mproc::init); buf()/as() after close(), or on an empty
// handle: SharedMemoryError (EBADF). SharedSpan: std::out_of_range for a slice outside its
// block; std::invalid_argument for slices_of(…, 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/types/string.hpp>

#include "mproc/errors.hpp"
#include "mproc/runtime/detail/shm_named.hpp"

namespace mproc {

class SharedMemory {
 public:
  // An empty handle (filled in by decoding, or by assignment).
  SharedMemory() = default;

  // Python's SharedMemory(name, create, size, track=...): create = true makes a new block of
  // `size` bytes (an empty name picks a random one); create = false attaches to the block
  // `name`, whose size must be at least `size` (0: whatever it is).
  explicit SharedMemory(std::string_view name, bool create = false, std::size_t size = 0,
                        bool track = true)
      : map_(create ? detail::shm_create(name, size, track) : detail::shm_attach(name, size)),
        name_(map_->name),
        size_(create ? size : map_->size) {}

  // A new block of `size` bytes, named `name` (or a random name).
  static SharedMemory create(std::size_t size, std::string_view name = {}, bool track = true) {
    return SharedMemory(name, true, size, track);
  }
  // The existing block `name`; at least `size` bytes of it (0: all of it).
  static SharedMemory attach(std::string_view name, std::size_t size = 0) {
    return SharedMemory(name, false, size);
  }

  // The block's name, without a leading '/'. Empty for an empty handle; kept after close().
  const std::string& name() const noexcept { return name_; }
  // Its size in bytes (for an attached block, the whole block's).
  std::size_t size() const noexcept { return size_; }
  bool closed() const noexcept { return map_ == nullptr; }

  // The memory. Throws SharedMemoryError (EBADF) after close() or on an empty handle. Not on
  // a temporary handle (deleted): the mapping would go with it at the end of the statement.
  std::span<std::byte> buf() const& { return {mapping().addr, size_}; }
  std::byte* data() const& { return mapping().addr; }
  // The block as size() / sizeof(T) T's (T trivially copyable; the block is page-aligned).
  template <class T>
  std::span<T> as() const& {
    static_assert(std::is_trivially_copyable_v<T>,
                  "SharedMemory::as<T>: T must be trivially copyable");
    return {reinterpret_cast<T*>(mapping().addr), size_ / sizeof(T)};
  }
  std::span<std::byte> buf() const&& = delete;
  std::byte* data() const&& = delete;
  template <class T>
  std::span<T> as() const&& = delete;

  // Ends this handle's access (Python's close()): the mapping goes when no copy uses it.
  void close() noexcept { map_.reset(); }
  // Removes the name: nobody can attach any more; the memory lives while anything maps it.
  // Throws SharedMemoryError (ENOENT when it is already gone).
  void unlink() const {
    if (name_.empty()) throw SharedMemoryError("mproc: unlink() on an empty SharedMemory", EBADF);
    detail::shm_unlink(name_);
  }

  template <class Archive>
  void save(Archive& ar) const {
    if (name_.empty()) throw SerializationError("mproc: sending an empty SharedMemory handle");
    ar(name_, static_cast<std::uint64_t>(size_));
  }
  template <class Archive>
  void load(Archive& ar) {
    std::string name;
    std::uint64_t size = 0;
    ar(name, size);
    try {
      map_ = detail::shm_attach_cached(name, static_cast<std::size_t>(size));
    } catch (const SharedMemoryError& e) {
      throw SerializationError(std::string("a SharedMemory handle cannot be attached here: ") +
                               e.what());
    }
    name_ = map_->name;
    size_ = static_cast<std::size_t>(size);
  }

  // The mapping under the handle (for SharedSpan and ShareableList).
  const std::shared_ptr<detail::ShmMapping>& mapping_ptr() const noexcept { return map_; }

 private:
  const detail::ShmMapping& mapping() const {
    if (!map_) {
      throw SharedMemoryError(name_.empty() ? "mproc: use of an empty SharedMemory handle"
                                            : "mproc: SharedMemory '" + name_ + "' is closed",
                              EBADF);
    }
    return *map_;
  }

  std::shared_ptr<detail::ShmMapping> map_;
  std::string name_;
  std::size_t size_ = 0;
};

// count T's of a block, from element `offset`; SharedSpan<const T> for read-only use.
template <class T>
class SharedSpan {
  static_assert(std::is_trivially_copyable_v<T>, "SharedSpan<T>: T must be trivially copyable");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using iterator = T*;

  SharedSpan() = default;
  // All of the block (size() / sizeof(T) elements).
  explicit SharedSpan(const SharedMemory& shm) : SharedSpan(shm, 0, shm.size() / sizeof(T)) {}
  // Elements [offset, offset + count) of the block. Throws std::out_of_range outside it,
  // SharedMemoryError for a closed or empty handle.
  SharedSpan(const SharedMemory& shm, std::size_t offset, std::size_t count)
      : map_(shm.mapping_ptr()), offset_(offset), count_(count) {
    if (!map_)
      throw SharedMemoryError("mproc: SharedSpan of a closed or empty SharedMemory", EBADF);
    check(shm.size());
  }
  // A writable span is also a read-only one.
  template <class U>
  requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>) SharedSpan(const SharedSpan<U>& o)
      : map_(o.mapping_ptr()), offset_(o.offset()), count_(o.size()) {}

  // Elements [offset, offset + count) of this span. Throws std::out_of_range.
  SharedSpan subspan(std::size_t offset, std::size_t count) const {
    if (offset > count_ || count > count_ - offset) {
      throw std::out_of_range("mproc::SharedSpan::subspan: [" + std::to_string(offset) + ", +" +
                              std::to_string(count) + ") is outside a span of " +
                              std::to_string(count_));
    }
    SharedSpan s(*this);
    s.offset_ = offset_ + offset;
    s.count_ = count;
    return s;
  }

  T* data() const noexcept { return map_ ? reinterpret_cast<T*>(map_->addr) + offset_ : nullptr; }
  std::size_t size() const noexcept { return count_; }
  std::size_t size_bytes() const noexcept { return count_ * sizeof(T); }
  bool empty() const noexcept { return count_ == 0; }
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + count_; }
  std::span<T> span() const noexcept { return {data(), count_}; }
  operator std::span<T>() const noexcept { return span(); }

  // The block's name; the first element's index in the block.
  const std::string& name() const {
    static const std::string none;
    return map_ ? map_->name : none;
  }
  std::size_t offset() const noexcept { return offset_; }
  const std::shared_ptr<detail::ShmMapping>& mapping_ptr() const noexcept { return map_; }

  template <class Archive>
  void save(Archive& ar) const {
    if (!map_) throw SerializationError("mproc: sending an empty SharedSpan");
    ar(map_->name, static_cast<std::uint64_t>(offset_), static_cast<std::uint64_t>(count_),
       static_cast<std::uint32_t>(sizeof(T)));
  }
  template <class Archive>
  void load(Archive& ar) {
    std::string name;
    std::uint64_t offset = 0, count = 0;
    std::uint32_t elem = 0;
    ar(name, offset, count, elem);
    if (elem != sizeof(T)) {
      throw SerializationError("a SharedSpan of " + std::to_string(elem) +
                               "-byte elements decoded as one of " + std::to_string(sizeof(T)));
    }
    constexpr std::uint64_t kMax = ~std::uint64_t{0} / sizeof(T);
    if (offset > kMax || count > kMax - offset) {
      throw SerializationError("a SharedSpan out of any block's range");
    }
    try {
      map_ =
          detail::shm_attach_cached(name, static_cast<std::size_t>((offset + count) * sizeof(T)));
    } catch (const SharedMemoryError& e) {
      throw SerializationError(std::string("a SharedSpan cannot be attached here: ") + e.what());
    }
    offset_ = static_cast<std::size_t>(offset);
    count_ = static_cast<std::size_t>(count);
  }

 private:
  void check(std::size_t block_bytes) const {
    const std::size_t n = block_bytes / sizeof(T);
    if (offset_ > n || count_ > n - offset_) {
      throw std::out_of_range("mproc::SharedSpan: elements [" + std::to_string(offset_) + ", " +
                              std::to_string(offset_) + " + " + std::to_string(count_) +
                              ") are outside block '" + map_->name + "' of " + std::to_string(n) +
                              " elements");
    }
  }

  std::shared_ptr<detail::ShmMapping> map_;
  std::size_t offset_ = 0;
  std::size_t count_ = 0;
};

// `whole` cut into n consecutive spans whose sizes differ by at most one (some are empty when
// n > whole.size()). Throws std::invalid_argument for n == 0.
template <class T>
std::vector<SharedSpan<T>> slices_of(const SharedSpan<T>& whole, std::size_t n) {
  if (n == 0) throw std::invalid_argument("mproc::slices_of: n must be at least 1");
  std::vector<SharedSpan<T>> out;
  out.reserve(n);
  const std::size_t base = whole.size() / n, extra = whole.size() % n;
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = base + (i < extra ? 1 : 0);
    out.push_back(whole.subspan(at, len));
    at += len;
  }
  return out;
}
// The whole block as T's, cut into n spans: slices_of<const double>(shm, 8).
template <class T>
std::vector<SharedSpan<T>> slices_of(const SharedMemory& shm, std::size_t n) {
  return slices_of(SharedSpan<T>(shm), n);
}

}  // namespace mproc
