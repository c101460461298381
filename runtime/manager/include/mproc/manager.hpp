// mproc/manager.hpp — mproc::Manager, Python's multiprocessing.Manager() and BaseManager.
//
//   mproc::Manager manager;                               // manager = Manager()
//   auto d = manager.dict<std::string, int>();            // d = manager.dict()
//   mproc::Process p(work, d);  p.start();  p.join();     // Process(target=work, args=(d,))
//   for (auto& [k, v] : d.items()) ...                    // d.items()
//
//   // Over the network (BaseManager(address=('', 50000), authkey=b'abc')):
//   mproc::Manager server({.address = "tcp:0.0.0.0:50000", .authkey = "abc"});
//   auto jobs = server.Queue<int>(0, "jobs");             // a named object, found by name
//   // another program, on another machine:
//   auto client = mproc::Manager::connect("tcp:10.0.0.1:50000", "abc");
//   auto jobs = client.Queue<int>(0, "jobs");             // the same queue
//
// A Manager starts a server process (an mproc::Process, started with the current start method)
// that owns the shared objects; the proxies (manager/proxies.hpp) send each call there. The
// server serves each connection on its own thread, so a client that stalls, sends garbage or
// disconnects mid-request affects no other client (TCP keepalive notices a vanished host in
// about 25 s). Every connection first proves it knows the authkey (challenge-response
// HMAC-SHA256 in both directions, libsodium), so a wrong key is refused before any request is
// served.
//
// Addresses: "" (default) a private abstract Unix socket; "unix:/path" or "unix:@name" (abstract);
// "tcp:HOST:PORT" or "HOST:PORT" (PORT 0 picks a free port: read address() afterwards).
// authkey "" makes a random 32-byte key (read authkey() to hand it to another program).
//
// Named objects: dict<K,V>("name"), Queue<T>(0, "name") ... return the object of that name,
// creating it the first time (Python registers a callable on a BaseManager subclass for this);
// asking for an existing name with another kind or type is a SerializationError. Unnamed calls
// make a new object each time. Objects live until the server shuts down.
//
// Lifetime: ~Manager calls shutdown() on a Manager that started its server: the server stops
// accepting, wakes every blocked call (they raise ManagerError), closes every connection and
// exits. shutdown() is bounded: its request has 2 s, then the server gets SIGTERM (and SIGCONT),
// and SIGKILL 5 s later (a stopped or wedged server cannot hold the caller); a static Manager may
// be destroyed at exit. The server is a daemon child: it is ended when the program exits, and gets
// SIGTERM when the thread that started it dies. A Manager from connect() owns no server:
// destroying it does nothing. A process that may not start children (a daemon Process, a Pool
// worker) cannot start a Manager (ProcessError): start it outside and pass proxies in.
//
// Latency: while the server has CPUs to spare (no more clients busy in the last 2 ms than half
// the CPUs), the server thread and its client wait for the next message by polling for up to
// 50 µs before sleeping: a call costs a few µs instead of two cross-core wake-ups, for at most
// 50 µs of CPU per call on each side. Busier servers never poll.
//
// Limits: a connection has handshake_timeout to finish the whole handshake (not per read), at
// most 64 connections may be in their handshake at once, and max_clients is clamped to what the
// server's descriptor limit allows. A request above max_message_bytes is read and dropped and
// answered with SerializationError: the connection (and the locks its thread holds) survive.
//
// Security: the authkey is the only gate. Anyone who has it can run any function of the
// server's executable through update_with (as anyone with Python's authkey can make the server
// unpickle anything): treat it as a password to the server process, and use TCP only on
// networks you trust (the traffic is authenticated, not encrypted).
//
// Thread safety: object-creating calls and the accessors may be used from any thread;
// start, shutdown and destruction must not race with other calls.
//
// Throws: ManagerError when the server cannot start (bad address, port in use: the server's
// message) or cannot be reached (within 10 s for a connection and its handshake);
// AuthenticationError for a wrong key; ProcessError from start() on a running Manager or where
// children may not be started; ManagerError from start() on a Manager from connect().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "mproc/manager/proxies.hpp"
#include "mproc/runtime/detail/owner.hpp"

namespace mproc {

class Process;

struct ManagerOptions {
  // See the header comment. Default: a private Unix socket.
  std::string address;
  // Default: a random 32-byte key.
  std::string authkey;
  // false: construct without starting; call start() (Python's BaseManager).
  bool start = true;
  // A connection that has not completed the whole handshake in this time is dropped.
  std::chrono::milliseconds handshake_timeout{5000};
  // Connections beyond this many are refused (closed at once); clamped to the descriptor limit.
  std::size_t max_clients = 1024;
  // A larger request is skipped and answered with SerializationError (a garbage length cannot
  // exhaust memory: the buffer grows only with what arrives).
  std::size_t max_message_bytes = std::size_t{64} << 20;
};

class Manager {
 public:
  // Starts a server on a private Unix socket with a random key (Python's Manager()).
  Manager();
  explicit Manager(ManagerOptions options);
  // A client of a server started elsewhere (BaseManager(address, authkey).connect()): checks
  // the address and key with one round trip. Throws ManagerError / AuthenticationError.
  static Manager connect(std::string address, std::string authkey);

  Manager(Manager&&) noexcept;
  Manager& operator=(Manager&&) noexcept;
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;
  ~Manager();

  // Starts the server (only for a Manager made with options.start = false, or after shutdown).
  void start();
  // Stops the server this Manager started; a no-op otherwise or when already stopped, and in
  // any process but the one that made the Manager (a fork child's copy, e.g. a static Manager
  // in a worker that calls exit(), leaves the server to its owner).
  void shutdown() noexcept;
  // Whether this Manager's server runs (for connect(): whether it answered the last ping).
  bool running() const;

  // The address clients connect to (with the port filled in for "tcp:HOST:0").
  const std::string& address() const noexcept { return address_; }
  const std::string& authkey() const noexcept { return authkey_; }
  // The server process's pid; 0 for a Manager from connect().
  pid_t pid() const noexcept;

  template <class K, class V>
  DictProxy<K, V> dict(const std::string& name = "") {
    return DictProxy<K, V>(make(detail::ObjectKind::kDict, name, DictProxy<K, V>::tag(), 0, {}));
  }
  template <class T>
  ListProxy<T> list(const std::string& name = "") {
    return ListProxy<T>(make(detail::ObjectKind::kList, name, ListProxy<T>::tag(), 0, {}));
  }
  NamespaceProxy Namespace(const std::string& name = "") {
    return NamespaceProxy(make(detail::ObjectKind::kNamespace, name, 0, 0, {}));
  }
  // Manager().Value(typecode, value): the initial value applies only when the object is made.
  template <class T>
  ValueProxy<T> Value(const T& initial = T{}, const std::string& name = "") {
    return ValueProxy<T>(make(detail::ObjectKind::kValue, name, ValueProxy<T>::tag(), 0,
                              detail::encode_value(initial)));
  }
  // maxsize 0: unbounded.
  template <class T>
  QueueProxy<T> Queue(std::size_t maxsize = 0, const std::string& name = "") {
    return QueueProxy<T>(make(detail::ObjectKind::kQueue, name, QueueProxy<T>::tag(),
                              static_cast<std::int64_t>(maxsize), {}));
  }
  LockProxy Lock(const std::string& name = "") {
    return LockProxy(make(detail::ObjectKind::kLock, name, 0, 0, {}));
  }
  LockProxy RLock(const std::string& name = "") {
    return LockProxy(make(detail::ObjectKind::kRLock, name, 0, 0, {}));
  }
  EventProxy Event(const std::string& name = "") {
    return EventProxy(make(detail::ObjectKind::kEvent, name, 0, 0, {}));
  }
  // std::invalid_argument for a negative value (Python's ValueError).
  SemaphoreProxy Semaphore(std::int64_t value = 1, const std::string& name = "") {
    return SemaphoreProxy(make(detail::ObjectKind::kSemaphore, name, 0, check(value), {}));
  }
  SemaphoreProxy BoundedSemaphore(std::int64_t value = 1, const std::string& name = "") {
    return SemaphoreProxy(make(detail::ObjectKind::kBoundedSemaphore, name, 0, check(value), {}));
  }

 private:
  static std::int64_t check(std::int64_t semaphore_value) {
    if (semaphore_value < 0) throw std::invalid_argument("Semaphore: initial value must be >= 0");
    return semaphore_value;
  }
  struct ClientTag {};
  Manager(ClientTag, std::string address, std::string authkey);
  detail::ProxyRef make(detail::ObjectKind kind, const std::string& name, std::uint64_t tag,
                        std::int64_t arg, const std::string& init);

  ManagerOptions options_;
  std::string address_;
  std::string authkey_;
  std::unique_ptr<Process> server_;  // null: a client, or not started
  detail::OwnerPid owner_;           // only this process starts and stops the server
  bool client_only_ = false;         // made by connect()
};

}  // namespace mproc
