// The objects a Manager's server owns, and what a request handler knows of its client.
// Internal to the manager's sources.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "mproc/manager/detail/protocol.hpp"
#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

// One client connection, as the objects see it.
struct Session {
  std::uint64_t id = 0;
  int fd = -1;
  bool same_executable = false;  // may name callables (update_with)
  std::size_t max_message = 0;
  const std::atomic<bool>* stopping = nullptr;
};

// Thrown from a wait when the session's client hung up: the handler ends without a reply.
struct PeerGone {};

// Whether the session's client hung up (checked before taking an item or a lock for it, so a
// client that died while waiting takes nothing it will never use).
bool peer_gone(const Session& s) noexcept;

class ManagedObject {
 public:
  ManagedObject(ObjectKind kind, std::uint64_t tag) : kind(kind), tag(tag) {}
  virtual ~ManagedObject() = default;

  // Runs one request: reads the op's fields from `in`, writes its results to `out`, all under
  // the object's lock (every call is atomic). Throws what the client should get.
  virtual void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) = 0;
  // The session ended (its client disconnected or died).
  virtual void disconnected(std::uint64_t /*session*/) {}
  // Wakes blocked waits so that they notice the server is stopping. Without the lock: an
  // update_with running a slow function holds it, and stopping must not wait for that (a
  // waiter that misses this notification re-checks within its 50 ms slice).
  void wake() { cv_.notify_all(); }

  const ObjectKind kind;
  const std::uint64_t tag;

 protected:
  // Waits on cv_ until pred() holds (true) or timeout_ns passes (false; < 0 or beyond a year:
  // no timeout).
  // Throws ManagerError when the server stops and PeerGone when the client hangs up, so a
  // client that died while waiting cannot take an item or a lock it will never use.
  template <class Pred>
  bool wait(std::unique_lock<std::mutex>& lock, Session& s, std::int64_t timeout_ns, Pred pred);

  std::mutex mu_;
  std::condition_variable cv_;
};

// Makes an object of `kind`. Throws SerializationError for an unknown kind, std::invalid_argument
// for a bad argument (a negative semaphore value).
std::unique_ptr<ManagedObject> make_object(ObjectKind kind, std::uint64_t tag, std::int64_t arg,
                                           const std::string& init);

}  // namespace mproc::detail
