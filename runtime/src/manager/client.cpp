// A proxy's side of the Manager protocol: per-thread connections, requests and replies.
#include "mproc/manager/detail/client.hpp"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <system_error>
#include <unordered_map>

#include "manager/net.hpp"
#include "mproc/errors.hpp"
#include "mproc/serialize/exception_wire.hpp"
#include "mproc/serialize/frame.hpp"

namespace mproc::detail {
namespace {

struct Cached {
  pid_t pid = 0;
  std::unique_ptr<Channel> conn;
};

// One connection per (thread, address): a call blocked on the server holds only its own
// thread's connection. Keyed by pid too, so a forked child never talks over its parent's socket.
thread_local std::unordered_map<std::string, Cached> t_connections;

// getpid() is a system call on every proxy call otherwise (glibc stopped caching it); every
// fork that mproc makes goes through fork(), which runs the atfork handler.
std::atomic<pid_t> g_pid{0};

pid_t current_pid() noexcept {
  pid_t p = g_pid.load(std::memory_order_relaxed);
  if (p != 0) return p;
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { g_pid.store(0, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  p = ::getpid();
  g_pid.store(p, std::memory_order_relaxed);
  return p;
}

std::string cache_key(const std::string& address, const std::string& authkey) {
  return address + '\0' + authkey;
}

Channel& connection(const ProxyRef& ref) {
  // Keyed by the key too: a connection authenticated with one key proves nothing for another.
  auto& slot = t_connections[cache_key(ref.address, ref.authkey)];
  if (slot.conn && slot.pid == current_pid()) return *slot.conn;
  slot.conn.reset();  // a parent's connection (after fork): this process's copy of the fd only
  auto conn = std::make_unique<Channel>(connect_to(ref.address));
  answer_challenge(*conn, ref.authkey);
  deliver_challenge(*conn, ref.authkey);
  // The hello: which executable we are, for update_with (no reply: saves a round trip).
  const std::string& fp = executable_fingerprint();
  conn->send({fp.data(), fp.size()});
  slot.pid = current_pid();
  slot.conn = std::move(conn);
  return *slot.conn;
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
  static const std::string fp = [] {
    std::string id = fingerprint_from_build_id();
    if (!id.empty()) return "build-id:" + id;
    // No build id (linked with --build-id=none): the file's identity is the next best thing.
    char path[4096] = {};
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    struct stat st {};
    ::stat("/proc/self/exe", &st);
    return "file:" + std::string(path, n > 0 ? static_cast<std::size_t>(n) : 0) + ":" +
           std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec);
  }();
  return fp;
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
  try {
    Channel& c = connection(ref);
    c.send(request);
    c.recv(reply, kDefaultMaxFrameBytes);
  } catch (const AuthenticationError&) {
    forget_connection(ref.address, ref.authkey);
    throw;
  } catch (const ManagerError&) {
    forget_connection(ref.address, ref.authkey);
    throw;
  } catch (const std::exception& e) {
    // EOF, a broken pipe, a reset, a corrupt frame: the server is gone or unusable for us.
    forget_connection(ref.address, ref.authkey);
    throw ManagerError("lost the connection to the manager at '" + ref.address +
                       "' (it was shut down or died): " + e.what());
  }
  if (reply.empty()) throw ManagerError("empty reply from the manager at '" + ref.address + "'");
  const char status = reply[0];
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
  t_connections.erase(cache_key(address, authkey));
}

}  // namespace mproc::detail
