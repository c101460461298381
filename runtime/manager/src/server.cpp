// A Manager's server process: accepts connections, authenticates each, and serves each on its
// own thread (so a stalled, garbage-sending or vanished client holds up nobody else).
#include "server.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/manager/detail/client.hpp"
#include "mproc/process_info.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "net.hpp"
#include "objects.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kMaxPendingHandshakes = 64;
constexpr std::size_t kKeepBuffer = std::size_t{1} << 20;

// The server's connections are descriptors: take the hard limit, and never admit more clients
// than it allows (beyond it accept fails and the clients would only see resets).
std::uint64_t raise_fd_limit(std::uint64_t max_clients) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return max_clients;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  const std::uint64_t room = rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 1;
  return std::min(max_clients, room);
}

class Server {
 public:
  Server(UniqueFd listener, ManagerServerConfig cfg)
      : listener_(std::move(listener)), cfg_(std::move(cfg)), wake_(::eventfd(0, EFD_CLOEXEC)) {}

  void run() {
    while (!stopping_.load()) {
      pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      // Out of descriptors: the listener stays readable and accept keeps failing; poll only
      // the wake-up descriptor for a moment instead of spinning a core.
      const bool backoff = backoff_until_ > std::chrono::steady_clock::now();
      if (::poll(backoff ? p + 1 : p, backoff ? 1 : 2, backoff ? 50 : -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[1].revents != 0) break;
      if (backoff || (p[0].revents & POLLIN) == 0) continue;
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!fd) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
          backoff_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
        }
        continue;
      }
      admit(std::move(fd));
    }
    stop();
  }

 private:
  // Starts a session thread for a new connection, or refuses it (closing it) when the server
  // is full: too many clients, too many still in their handshake (connections that never
  // authenticate must not lock out the ones that do), or no thread to be had.
  void admit(UniqueFd fd) {
    std::lock_guard lock(mu_);
    if (sessions_.size() >= cfg_.max_clients || pending_ >= kMaxPendingHandshakes) {
      get_logger()->warn("manager: refusing a connection: {} clients, {} in their handshake",
                         sessions_.size(), pending_);
      return;
    }
    tune_accepted(fd.get());
    const std::uint64_t id = next_session_++;
    const int raw = fd.get();
    sessions_[id] = raw;
    ++live_;
    ++pending_;
    try {
      std::thread([this, id, f = std::move(fd)]() mutable { serve(id, std::move(f)); }).detach();
    } catch (const std::exception& e) {  // out of threads or memory: refuse this one, go on
      get_logger()->warn("manager: refusing a connection: {}", e.what());
      sessions_.erase(id);
      --live_;
      --pending_;
      ::close(raw);  // the lambda never took ownership: std::thread threw before running it
    }
  }

 private:
  void request_stop() {
    stopping_.store(true);
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
  }

  // Wakes every blocked call and connection, then waits (bounded) for the session threads.
  void stop() {
    stopping_.store(true);
    listener_.reset();
    std::vector<std::shared_ptr<ManagedObject>> objs;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, fd] : sessions_) ::shutdown(fd, SHUT_RDWR);
      for (auto& [id, o] : objects_) objs.push_back(o);
    }
    for (auto& o : objs) o->wake();
    std::unique_lock lock(mu_);
    // A session running a user's update_with function cannot be interrupted (and holds its
    // object's lock): do not wait for it forever; the process exits anyway.
    done_cv_.wait_for(lock, std::chrono::seconds(2), [&] { return live_ == 0; });
  }

  static std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int take_slot() {
    std::lock_guard lock(mu_);
    for (int i = 0; i < kSlots; ++i) {
      if (!slot_used_[static_cast<std::size_t>(i)]) {
        slot_used_[static_cast<std::size_t>(i)] = true;
        active_[static_cast<std::size_t>(i)].store(1, std::memory_order_relaxed);  // long ago
        return i;
      }
    }
    unslotted_.fetch_add(1);
    return kNoSlot;
  }
  void free_slot(int slot) {
    if (slot == kNoSlot) {
      unslotted_.fetch_sub(1);
      return;
    }
    std::lock_guard lock(mu_);
    active_[static_cast<std::size_t>(slot)].store(0, std::memory_order_relaxed);
    slot_used_[static_cast<std::size_t>(slot)] = false;
  }
  void mark_active(int slot) noexcept {
    if (slot >= 0 && slot < kSlots) {
      active_[static_cast<std::size_t>(slot)].store(now_ns(), std::memory_order_relaxed);
    }
  }
  std::size_t active_clients() const noexcept {
    const std::int64_t since = now_ns() - 2'000'000;
    std::size_t n = unslotted_.load(std::memory_order_relaxed);
    for (const auto& a : active_) n += a.load(std::memory_order_relaxed) > since ? 1 : 0;
    return n;
  }

  void serve(std::uint64_t id, UniqueFd fd) {
    Session s;
    s.id = id;
    s.fd = fd.get();
    s.max_message = cfg_.max_message_bytes;
    s.stopping = &stopping_;
    Channel conn(std::move(fd));
    bool pending = true;
    int slot = -1;  // in active_: -1 not yet, kNoSlot when every slot was taken
    const auto done_pending = [&] {
      if (!pending) return;
      pending = false;
      std::lock_guard lock(mu_);
      --pending_;
    };
    try {
      // One deadline for the whole handshake: a peer trickling a byte at a time cannot
      // stretch it (a per-recv timeout would restart with every byte).
      set_io_timeout(s.fd, cfg_.handshake_timeout_ms);
      conn.set_deadline(std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(cfg_.handshake_timeout_ms));
      deliver_challenge(conn, cfg_.authkey, kClientRole);
      answer_challenge(conn, cfg_.authkey, kServerRole);
      Bytes hello;
      conn.recv(hello, 256);
      s.same_executable = std::string(hello.begin(), hello.end()) == executable_fingerprint();
      conn.set_deadline(std::nullopt);
      set_io_timeout(s.fd, 0);
      done_pending();
      slot = take_slot();
      Bytes req, rep;
      for (;;) {
        rep.clear();
        bool stop_after = false;
        try {
          conn.recv(req, cfg_.max_message_bytes, true);
          mark_active(slot);
          if (!handle(req, rep, s, stop_after)) break;  // the client hung up while waiting
        } catch (const OversizedMessage& m) {           // skipped: answer, and keep the connection
          rep.assign(1, 1);
          encode_error(rep, "SerializationError",
                       "a manager request of " + std::to_string(m.length) +
                           " bytes exceeds the server's max_message_bytes (" +
                           std::to_string(cfg_.max_message_bytes) + ")");
        }
        // Poll for the next request, and let the client poll for this reply's successor,
        // only while there are CPUs to spare (see kStatusSpin).
        const bool spin = active_clients() <= spin_clients_;
        conn.set_spin(spin ? kSpinWait : kNoSpin);
        if (spin) rep[0] = static_cast<char>(static_cast<std::uint8_t>(rep[0]) | kStatusSpin);
        conn.send(rep);
        if (stop_after) {
          request_stop();
          break;
        }
        // One huge request or reply must not pin its memory for the session's life.
        if (req.capacity() > kKeepBuffer) Bytes().swap(req);
        if (rep.capacity() > kKeepBuffer) Bytes().swap(rep);
      }
    } catch (const AuthenticationError& e) {
      get_logger()->warn("manager: connection {} refused: {}", id, e.what());
    } catch (const EOFError&) {
      // the client closed its connection: the normal end of a session
    } catch (const std::exception& e) {
      // garbage, a frame over the limit, a reset: only this connection ends
      get_logger()->debug("manager: connection {} dropped: {}", id, e.what());
    }
    done_pending();
    if (slot >= 0) free_slot(slot);
    std::vector<std::shared_ptr<ManagedObject>> objs;
    {
      std::lock_guard lock(mu_);
      sessions_.erase(id);  // first: stop() must never shut down a reused descriptor number
      for (auto& [oid, o] : objects_) objs.push_back(o);
    }
    conn.close();
    for (auto& o : objs) o->disconnected(id);
    std::lock_guard lock(mu_);
    if (--live_ == 0) done_cv_.notify_all();
  }

  // One request into `rep` (status byte first). False when the client hung up mid-wait.
  bool handle(const Bytes& req, Bytes& rep, Session& s, bool& stop_after) {
    rep.push_back(0);
    try {
      WireInputArchive in{std::span<const char>(req)};
      WireOutputArchive out(rep);
      const auto id = read<std::uint32_t>(in);
      const auto op = read<Op>(in);
      if (id == 0) {
        serve_server_op(op, in, out, stop_after);
      } else {
        object(id)->handle(op, in, out, s);
      }
      if (in.remaining() != 0) throw SerializationError("corrupt manager request: bytes left over");
      if (rep.size() > kDefaultMaxFrameBytes) {
        throw SerializationError("the reply (" + std::to_string(rep.size()) +
                                 " bytes) exceeds the 1 GiB message limit");
      }
    } catch (const PeerGone&) {
      return false;
    } catch (...) {
      rep.assign(1, 1);
      encode_current_exception(rep);
    }
    return true;
  }

  void serve_server_op(Op op, WireInputArchive& in, WireOutputArchive& out, bool& stop_after) {
    switch (op) {
      case Op::kPing:
        return;
      case Op::kShutdown:
        stop_after = true;
        return;
      case Op::kCreate: {
        const auto kind = read<ObjectKind>(in);
        const auto name = read<std::string>(in);
        const auto tag = read<std::uint64_t>(in);
        const auto arg = read<std::int64_t>(in);
        const auto init = read<std::string>(in);
        std::lock_guard lock(mu_);
        if (!name.empty()) {
          if (auto it = names_.find(name); it != names_.end()) {
            const auto& o = objects_.at(it->second);
            if (o->kind != kind || o->tag != tag) {
              throw SerializationError("the manager already has an object named '" + name +
                                       "' of another kind or type");
            }
            out(it->second);
            return;
          }
        }
        std::shared_ptr<ManagedObject> obj = make_object(kind, tag, arg, init);
        const std::uint32_t id = next_object_++;
        objects_.emplace(id, std::move(obj));
        if (!name.empty()) names_.emplace(name, id);
        out(id);
        return;
      }
      default:
        throw SerializationError("unknown manager operation " +
                                 std::to_string(static_cast<int>(op)));
    }
  }

  std::shared_ptr<ManagedObject> object(std::uint32_t id) {
    std::lock_guard lock(mu_);
    const auto it = objects_.find(id);
    if (it == objects_.end()) {
      throw SerializationError("the manager has no object " + std::to_string(id) +
                               " (a proxy from another manager, or a corrupt request)");
    }
    return it->second;
  }

  template <class T>
  static T read(WireInputArchive& in) {
    T x{};
    in(x);
    return x;
  }

  UniqueFd listener_;
  const ManagerServerConfig cfg_;
  UniqueFd wake_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable done_cv_;
  std::unordered_map<std::uint64_t, int> sessions_;  // id -> descriptor, while it is open
  std::size_t live_ = 0;                             // session threads not yet finished
  // Which clients are busy: each authenticated session has a slot holding the time of its last
  // request; a client counts as active for 2 ms after one (an idle connection, such as the
  // owner's while its children do the work, does not count). Beyond kSlots sessions the extra
  // ones always count: no polling then.
  static constexpr int kSlots = 64;
  static constexpr int kNoSlot = kSlots;
  std::array<std::atomic<std::int64_t>, kSlots> active_{};  // ns of the last request; 0: free
  std::array<bool, kSlots> slot_used_{};                    // under mu_
  std::atomic<std::size_t> unslotted_{0};
  // Polling pays while each client's server thread and the client itself have a CPU: at most
  // half the CPUs' worth of clients (one client on two CPUs).
  const std::size_t spin_clients_ = std::max<std::size_t>(1, cpu_count() / 2);
  std::size_t pending_ = 0;  // sessions still in their handshake
  std::chrono::steady_clock::time_point backoff_until_{};
  std::uint64_t next_session_ = 1;
  std::unordered_map<std::uint32_t, std::shared_ptr<ManagedObject>> objects_;
  std::unordered_map<std::string, std::uint32_t> names_;
  std::uint32_t next_object_ = 1;
};

}  // namespace

void manager_server_main(std::string address, std::string authkey, std::int64_t handshake_ms,
                         std::uint64_t max_clients, std::uint64_t max_message,
                         Connection<std::string> ready) {
  // Ctrl-C reaches the whole process group; the program decides what it means, and a program
  // that handles it still needs its Manager (Python's server ignores SIGINT too).
  ::signal(SIGINT, SIG_IGN);
  UniqueFd listener;
  std::string bound;
  try {
    listener = listen_on(address, bound);
  } catch (const std::exception& e) {
    ready.send(std::string("error:") + e.what());
    return;
  }
  ready.send("ok:" + bound);
  ready.close();
  ManagerServerConfig cfg{std::move(authkey), handshake_ms, raise_fd_limit(max_clients),
                          max_message};
  // Never destroyed: a session still inside a user's function (stop() waits for it only so
  // long) must find the server intact until _exit, and must not run into static destructors.
  auto* server = new Server(std::move(listener), std::move(cfg));
  server->run();
  std::fflush(nullptr);
  ::_exit(0);
}

}  // namespace mproc::detail
