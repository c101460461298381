// mproc/runtime/detail/shm_arena.hpp — the shared memory under Value, Array and the locks.
// Internal (namespace detail); not part of the public API.
//
// Every shared object lives in an arena: a memfd (memfd_create + ftruncate) mapped MAP_SHARED.
// Small objects share one arena through a bump allocator; an object larger than a quarter of
// the default arena gets an arena of its own. Space is never reused inside an arena.
//
// Reaching an arena from another process:
//   * a fork child inherits the mapping (and this process's table of arenas, so a handle
//     decoded in a fork child uses the inherited mapping);
//   * any other process (a "spawn" worker, a fork worker made before the object existed)
//     re-opens the memfd through /proc/<pid>/fd/<n> of a process that holds it — the sender,
//     or else the arena's creator — so one of them must be alive when the handle is decoded.
//     The receiver checks that the descriptor names an mproc arena with the device and inode
//     the handle announced before it maps anything, and that the object's header (a hash of
//     its type and its size, written by the creator) matches what the receiver expects, so a
//     corrupt or forged handle is a SerializationError, never a wild mapping.
//
// Lifetime: each process holds an arena while any handle to an object in it is alive there
// (std::shared_ptr); the last one in the process unmaps it and closes its descriptor. The
// kernel frees the memory when no process maps it or holds its descriptor any more.
//
// Thread safety: all functions are thread-safe; the table of arenas is protected by a mutex
// that is held across fork() (pthread_atfork), so a fork child never inherits it locked.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <typeinfo>

namespace mproc::detail {

class ShmArena;

// Offset 0 of every object's 16 bytes of header, written last by the creator.
struct ShmHeader {
  std::uint64_t kind;
  std::uint64_t size;
};

// What a handle sends for one object.
struct ShmHandleWire {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  std::int32_t pid[2] = {-1, -1};  // processes that hold the memfd: the sender, the creator
  std::int32_t fd[2] = {-1, -1};

  template <class Archive>
  void serialize(Archive& ar) {
    ar(dev, ino, offset, size, pid[0], fd[0], pid[1], fd[1]);
  }
};

// A reference to one object in an arena; keeps the arena mapped.
class ShmRef {
 public:
  ShmRef() = default;
  // A new zero-filled object of `size` bytes, aligned to 64 bytes, tagged with `kind`.
  // Throws std::system_error when the memory cannot be obtained.
  static ShmRef allocate(std::size_t size, std::uint64_t kind);
  // Marks a freshly allocated object as initialised (writes its header).
  void publish() const noexcept;
  // The object named by `w` (see above). Throws SerializationError.
  static ShmRef attach(const ShmHandleWire& w, std::uint64_t kind);
  ShmHandleWire describe() const;

  void* get() const noexcept { return ptr_; }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return ptr_ != nullptr; }
  bool operator==(const ShmRef& o) const noexcept { return ptr_ == o.ptr_; }

 private:
  std::shared_ptr<ShmArena> arena_;
  void* ptr_ = nullptr;
  std::size_t offset_ = 0;
  std::size_t size_ = 0;
  std::uint64_t kind_ = 0;
};

// A stable 64-bit tag for a type (FNV-1a of its mangled name): the same in every process
// running the same executable.
std::uint64_t shm_kind(const std::type_info& t) noexcept;

}  // namespace mproc::detail
