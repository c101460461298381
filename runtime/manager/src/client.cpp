// A proxy's side of the Manager protocol: per-thread connections, requests and replies.
#include "mproc/manager/detail/client.hpp"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <poll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "mproc/errors.hpp"
#include "mproc/serialize/detail/exception_wire.hpp"
#include "mproc/serialize/detail/frame.hpp"
#include "net.hpp"

namespace mproc::detail {
namespace {

// Every cached connection's descriptor, process-wide: a forked child closes its copies of all
// of them at once (atfork), so that no child keeps a parent's connection open — the server
// must see the parent's hangup when the parent dies (to release its locks, to stop waiting
// for it). Never destroyed: a static Manager's destructor may run after other statics.
struct Registry {
  std::mutex mu;
  // A fixed array, not a container: the atfork child handler must not allocate (another thread
  // may have held the allocator's lock at the fork). Connections beyond it are not closed in
  // children (a process with over 1024 manager connections).
  std::array<int, 1024> fds{};
  std::size_t count = 0;
  std::atomic<std::uint64_t> generation{1};  // bumped in every forked child

  void add(int fd) {
    if (count < fds.size()) fds[count++] = fd;
  }
  void remove(int fd) {
    for (std::size_t i = 0; i < count; ++i) {
      if (fds[i] == fd) {
        fds[i] = fds[--count];
        return;
      }
    }
  }
};
Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    ::pthread_atfork([] { registry().mu.lock(); }, [] { registry().mu.unlock(); },
                     [] {
                       Registry& g = registry();
                       for (std::size_t i = 0; i < g.count; ++i) ::close(g.fds[i]);
                       g.count = 0;
                       g.generation.fetch_add(1);
                       g.mu.unlock();
                     });
    return reg;
  }();
  return *r;
}

struct Cached {
  std::uint64_t generation = 0;
  std::unique_ptr<Channel> conn;

  Cached() = default;
  Cached(Cached&&) = default;
  Cached& operator=(Cached&&) = default;
  ~Cached() { drop(); }

  bool stale() const { return generation != registry().generation.load(); }
  void drop() noexcept {
    if (!conn) return;
    if (stale()) {
      conn->abandon();  // the atfork handler closed this process's copy already
    } else {
      std::lock_guard lock(registry().mu);
      registry().remove(conn->fileno());
    }
    conn.reset();
  }
};

// One connection per (thread, address, key): a call blocked on the server holds only its own
// thread's connection. t_cache_gone (trivially destructible, so readable to the end) says the
// thread's cache was destroyed: a proxy used from a static destructor then gets a connection
// for its one call instead of touching freed memory.
thread_local bool t_cache_gone = false;
struct ConnectionCache {
  std::unordered_map<std::string, Cached> map;
  std::string key;  // reused for every lookup: no allocation per proxy call
  ~ConnectionCache() { t_cache_gone = true; }
};
thread_local ConnectionCache t_cache;
std::unordered_map<std::string, Cached>& connections() {
  return t_cache.map;
}

std::string cache_key(const std::string& address, const std::string& authkey) {
  return address + '\0' + authkey;
}

// Connections whose server hung up (a Manager shut down from another thread) are dropped when
// this thread opens a new one, so dead ones do not pile up in a long-lived thread.
void prune_dead_connections() {
  auto& cache = connections();
  for (auto it = cache.begin(); it != cache.end();) {
    bool dead = !it->second.conn || it->second.stale();
    if (!dead) {
      pollfd p{it->second.conn->fileno(), POLLRDHUP, 0};
      dead = ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    }
    it = dead ? cache.erase(it) : std::next(it);
  }
}

Channel& connection(const ProxyRef& ref) {
  // Keyed by the key too: a connection authenticated with one key proves nothing for another.
  std::string& key = t_cache.key;
  key.assign(ref.address).append(1, '\0').append(ref.authkey);
  if (auto it = connections().find(key); it != connections().end()) {
    if (it->second.conn && !it->second.stale()) return *it->second.conn;
    connections().erase(it);
  }
  prune_dead_connections();
  Cached c;
  c.conn = open_connection(ref.address, ref.authkey, kConnectTimeout);

  {
    std::lock_guard lock(registry().mu);
    registry().add(c.conn->fileno());
    c.generation = registry().generation.load();
  }
  return *connections().emplace(key, std::move(c)).first->second.conn;
}

std::string fingerprint_from_build_id() {
  std::string id;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto* out = static_cast<std::string*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) continue;
          const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
          const char* end = p + ph.p_memsz;
          while (p + sizeof(ElfW(Nhdr)) <= end) {
            ElfW(Nhdr) nh;
            std::memcpy(&nh, p, sizeof nh);
            const char* name = p + sizeof nh;
            const char* desc = name + ((nh.n_namesz + 3) & ~3u);
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0 && desc + nh.n_descsz <= end) {
              out->assign(desc, nh.n_descsz);
              return 1;
            }
            p = desc + ((nh.n_descsz + 3) & ~3u);
          }
        }
        return 1;  // the first object is the executable: stop either way
      },
      &id);
  return id;
}

}  // namespace

std::uint64_t type_tag(const std::type_info& t) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (const char* p = t.name(); *p != '\0'; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 1099511628211ull;
  }
  return h;
}

const std::string& executable_fingerprint() {
  // Never destroyed: a static Manager's destructor connects (and says hello) during exit,
  // possibly after this function's statics would have been destroyed.
  static const std::string* fp = new std::string([] {
    std::string id = fingerprint_from_build_id();
    if (!id.empty()) return "build-id:" + id;
    // No build id (linked with --build-id=none): the file's identity is the next best thing.
    char path[4096] = {};
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    struct stat st {};
    ::stat("/proc/self/exe", &st);
    // Hashed: the hello is capped at 256 bytes and a path may be 4 KiB long.
    const std::string file = std::string(path, n > 0 ? static_cast<std::size_t>(n) : 0) + ":" +
                             std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) +
                             "." + std::to_string(st.st_mtim.tv_nsec);
    return "file:" + std::to_string(std::hash<std::string>{}(file));
  }());
  return *fp;
}

Bytes begin_request(std::uint32_t id, Op op) {
  Bytes b;
  b.reserve(64);
  WireOutputArchive ar(b);
  ar(id, op);
  return b;
}

Bytes call(const ProxyRef& ref, const Bytes& request) {
  if (ref.address.empty()) throw ClosedError("empty manager proxy");
  Bytes reply;
  std::unique_ptr<Channel> once;  // after this thread's cache is gone (static destructors)
  Channel* used = nullptr;
  try {
    if (t_cache_gone) once = open_connection(ref.address, ref.authkey, kConnectTimeout);
    Channel& c = once ? *once : connection(ref);
    used = &c;
    c.send(request);
    c.recv(reply, kDefaultMaxFrameBytes);
  } catch (const AuthenticationError&) {
    forget_connection(ref.address, ref.authkey);
    throw;
  } catch (const ManagerError&) {
    forget_connection(ref.address, ref.authkey);
    throw;
  } catch (const SerializationError&) {
    throw;  // a request over the 1 GiB cap, refused before anything was sent
  } catch (const std::exception& e) {
    // EOF, a broken pipe, a reset, a corrupt frame: the server is gone or unusable for us.
    forget_connection(ref.address, ref.authkey);
    throw ManagerError("lost the connection to the manager at '" + ref.address +
                       "' (it was shut down or died): " + e.what());
  }
  if (reply.empty()) throw ManagerError("empty reply from the manager at '" + ref.address + "'");
  // The server's hint: it has CPUs to spare, so wait for the next reply by polling (see
  // kStatusSpin in protocol.hpp).
  const auto byte = static_cast<std::uint8_t>(reply[0]);
  used->set_spin((byte & kStatusSpin) != 0 ? kSpinWait : kNoSpin);
  const char status = static_cast<char>(byte & ~kStatusSpin);
  reply.erase(reply.begin());
  if (status == 0) return reply;
  std::rethrow_exception(decode_exception(reply));
}

ProxyRef create_object(const std::string& address, const std::string& authkey, ObjectKind kind,
                       const std::string& name, std::uint64_t tag, std::int64_t arg,
                       const std::string& init) {
  ProxyRef ref{address, authkey, 0, kind, tag};
  Bytes req = begin_request(0, Op::kCreate);
  {
    WireOutputArchive ar(req);
    ar(kind, name, tag, arg, init);
  }
  Bytes rep = call(ref, req);
  ref.id = Reply(rep).read<std::uint32_t>();
  return ref;
}

void forget_connection(const std::string& address, const std::string& authkey) noexcept {
  if (t_cache_gone) return;
  connections().erase(cache_key(address, authkey));
}

std::unique_ptr<Channel> open_connection(const std::string& address, const std::string& authkey,
                                         std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto conn = std::make_unique<Channel>(connect_to(address, limit.count()));
  conn->set_deadline(deadline);  // a listener that never speaks cannot hold us
  answer_challenge(*conn, authkey, kClientRole);
  deliver_challenge(*conn, authkey, kServerRole);
  // The hello: which executable we are, for update_with (no reply: saves a round trip).
  const std::string& fp = executable_fingerprint();
  conn->send({fp.data(), fp.size()});
  conn->set_deadline(std::nullopt);
  set_io_timeout(conn->fileno(), 0);
  return conn;
}

void request_shutdown(const std::string& address, const std::string& authkey,
                      std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto conn = open_connection(address, authkey, limit);
  conn->set_deadline(deadline);
  conn->send(begin_request(0, Op::kShutdown));
  Bytes reply;
  conn->recv(reply, 1024);
}

}  // namespace mproc::detail
