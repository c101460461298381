// mproc/manager/detail/client.hpp — how a proxy reaches its Manager's server. Internal.
//
// A proxy is a ProxyRef (server address, authkey, object id, kind, type tag): plain data, so a
// proxy can be copied, passed to a Process, or sent inside a Pool task. Each (process, thread)
// opens its own connection to an address the first time it calls through it and keeps it for
// later calls (as Python's proxies do), so a call that blocks on the server (Queue::get,
// Lock::acquire) never holds up another thread's calls. A forked child never reuses its
// parent's connection: the cache is keyed by pid.
//
// Thread safety: call() is thread-safe (per-thread connections). A ProxyRef is a value.
#pragma once

#include <cstdint>
#include <string>

#include "mproc/manager/detail/protocol.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

struct ProxyRef {
  std::string address;
  std::string authkey;
  std::uint32_t id = 0;
  ObjectKind kind = ObjectKind::kDict;
  std::uint64_t tag = 0;

  template <class A>
  void serialize(A& ar) {
    ar(address, authkey, id, kind, tag);
  }
};

// Starts a request to object `id`: the caller appends the op's fields to the returned buffer.
Bytes begin_request(std::uint32_t id, Op op);

// Sends `request` to the server at `ref.address` over this thread's connection and returns the
// reply's fields (after the ok status). Rethrows the server's error (typed, as a Pool task's);
// ManagerError when the server cannot be reached or the connection breaks; AuthenticationError
// when the handshake fails; ClosedError for an empty proxy.
Bytes call(const ProxyRef& ref, const Bytes& request);

// Asks the server at `address` for an object (get-or-create when `name` is not empty).
ProxyRef create_object(const std::string& address, const std::string& authkey, ObjectKind kind,
                       const std::string& name, std::uint64_t tag, std::int64_t arg,
                       const std::string& init);

// Drops this thread's cached connection to `address` (after a shutdown, so the next call fails
// fast with ManagerError instead of writing into a dead socket).
void forget_connection(const std::string& address, const std::string& authkey) noexcept;

// This executable's identity for update_with (its GNU build id, or its path, size and mtime).
const std::string& executable_fingerprint();

// A typed decoder over a reply.
class Reply {
 public:
  explicit Reply(const Bytes& b) : bytes_(b), in_(std::span<const char>(bytes_)) {}
  template <class T>
  T read() {
    T x{};
    in_(x);
    return x;
  }

 private:
  const Bytes& bytes_;
  WireInputArchive in_;
};

}  // namespace mproc::detail
