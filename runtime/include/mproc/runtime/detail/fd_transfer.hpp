// mproc/runtime/detail/fd_transfer.hpp — how descriptors inside Process arguments reach the child.
// Internal (namespace detail).
//
// A Connection or Queue passed to a Process is encoded as the numbers of its descriptors. While
// the Process encodes its arguments, an FdCollector is active on that thread: every descriptor
// written is recorded, so that under "spawn" exactly those descriptors are kept open across the
// exec (at the same numbers). In the child, decoding takes a descriptor: one listed in the
// FdAdopter (inherited across exec and owned by nobody yet) is adopted once; any other (fork:
// the child inherited all of the parent's) is duplicated, so each decoded handle owns its own.
//
// Outside a Process's arguments (a Pool task, a Queue item, a Connection message) there is no
// collector and encoding a descriptor is a SerializationError: its number means nothing in
// another process.
//
// Thread safety: both scopes are thread-local.
#pragma once

#include <vector>

namespace mproc::detail {

class FdCollector {
 public:
  explicit FdCollector(std::vector<int>& out) noexcept;
  ~FdCollector();
  FdCollector(const FdCollector&) = delete;
  FdCollector& operator=(const FdCollector&) = delete;

 private:
  std::vector<int>* prev_;
};

class FdAdopter {
 public:
  explicit FdAdopter(std::vector<int>& inherited) noexcept;
  ~FdAdopter();  // closes whatever was inherited and not adopted
  FdAdopter(const FdAdopter&) = delete;
  FdAdopter& operator=(const FdAdopter&) = delete;

 private:
  std::vector<int>* prev_;
  std::vector<int>& fds_;
};

// Encoding side: records `fd` and returns it. Throws SerializationError (naming `what`) when no
// collector is active.
int note_fd(int fd, const char* what);
// Decoding side: a descriptor this process owns for `fd` (CLOEXEC). Throws SerializationError.
int take_fd(int fd);

}  // namespace mproc::detail
