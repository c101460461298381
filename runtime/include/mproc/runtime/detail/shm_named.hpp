// mproc/runtime/detail/shm_named.hpp — named POSIX shared-memory blocks under SharedMemory,
// SharedSpan and ShareableList, the per-process cache of their mappings, and the tracker that
// unlinks the blocks a dead process left behind. Internal (namespace detail).
//
// Mappings. A block is a file in /dev/shm (shm_open) mapped MAP_SHARED, whole, at a
// page-aligned address; its descriptor is closed as soon as it is mapped (the mapping keeps
// the memory), so a handle holds no descriptor. A ShmMapping unmaps on destruction; handles
// share one through std::shared_ptr.
//
// The cache (attach_cached): handles decoded from the wire — task arguments, above all slices
// of one big block — go through a per-process table keyed by name, so a worker maps a block
// once, not once per task: a task pays an open + fstat + close to check that the name still
// names the same file (same device, inode and size; a block unlinked and created again under
// the same name is mapped afresh), never a new mapping and its page faults. The table keeps the
// 8 blocks used last mapped after their handles are gone; an older one is unmapped when a 9th
// is mapped, and unlinking a block in a process drops it from that process's table.
//
// The tracker: see shm_tracker.cpp and named_shared_memory.hpp ("Lifetime").
//
// Thread safety: every function is thread-safe. The cache's and the tracker's locks are held
// across fork() (pthread_atfork), so a fork child never inherits them locked.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace mproc::detail {

struct ShmMapping {
  ShmMapping(std::string n, std::byte* a, std::size_t s, std::uint64_t d, std::uint64_t i)
      : name(std::move(n)), addr(a), size(s), dev(d), ino(i) {}
  ~ShmMapping();
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;

  std::string name;  // without the leading '/'
  std::byte* addr;
  std::size_t size;  // the block's size when it was mapped (all of it is mapped)
  std::uint64_t dev;
  std::uint64_t ino;
};

// The name as stored (leading '/' removed), checked: 1..200 characters, no other '/', no NUL.
// Throws SharedMemoryError (EINVAL).
std::string shm_check_name(std::string_view name);

// A new block of `size` bytes (> 0), zero-filled and backed by memory (fallocate: a full
// /dev/shm is an error here, not a SIGBUS at the first write). An empty name picks a random
// unused one ("mproc_" + 16 hex digits). With `track`, the tracker of this process is told.
// Throws SharedMemoryError.
std::shared_ptr<ShmMapping> shm_create(std::string_view name, std::size_t size, bool track);

// Maps the existing block `name`, all of it; at least `min_size` bytes must exist (0: any
// non-empty block), else SharedMemoryError (EINVAL) — never a mapping whose end would SIGBUS.
std::shared_ptr<ShmMapping> shm_attach(std::string_view name, std::size_t min_size);
// The same through the per-process cache (see above).
std::shared_ptr<ShmMapping> shm_attach_cached(std::string_view name, std::size_t min_size);

// Removes the name (the memory lives on while anything maps it); tells this process's tracker
// and drops the name from this process's cache. Throws SharedMemoryError (ENOENT: no such block).
void shm_unlink(std::string_view name);

// ---- the tracker ------------------------------------------------------------------------------

// Starts this process's tracker if it has none (a fork child shares its parent's). Throws
// SharedMemoryError when it cannot be started (no mproc::init in this program: EPERM).
void shm_tracker_start();
// Whether this process has a tracker connection (started here or inherited through fork).
bool shm_tracker_running() noexcept;
// Tells the tracker that `name` was created as the file (dev, ino) — it unlinks it if that file
// still has the name when every process holding a connection to the tracker has ended — or
// unlinked. Throws SharedMemoryError.
void shm_tracker_register(const std::string& name, std::uint64_t dev, std::uint64_t ino);
void shm_tracker_unregister(const std::string& name) noexcept;
// The pid of the tracker (for tests), or -1.
pid_t shm_tracker_pid() noexcept;

// Called first thing by mproc::init: records that this program calls init (so the tracker may
// be exec'd from it), and in a program exec'd as a tracker, runs the tracker and never returns.
void enter_if_shm_tracker();

}  // namespace mproc::detail
