// mproc::Manager: starts, reaches and stops a Manager's server process.
#include "mproc/manager.hpp"

#include <signal.h>

#include <chrono>
#include <utility>

#include "mproc/connection.hpp"
#include "mproc/process.hpp"
#include "net.hpp"
#include "server.hpp"

namespace mproc {

Manager::Manager() : Manager(ManagerOptions{}) {}

Manager::Manager(ManagerOptions options) : options_(std::move(options)) {
  authkey_ = options_.authkey.empty() ? detail::random_authkey() : options_.authkey;
  if (options_.start) start();
}

Manager::Manager(ClientTag, std::string address, std::string authkey)
    : address_(std::move(address)), authkey_(std::move(authkey)), client_only_(true) {
  options_.start = false;
}

Manager Manager::connect(std::string address, std::string authkey) {
  Manager m(ClientTag{}, std::move(address), std::move(authkey));
  detail::ProxyRef ref{m.address_, m.authkey_, 0, detail::ObjectKind::kDict, 0};
  detail::call(ref, detail::begin_request(0, detail::Op::kPing));
  return m;
}

Manager::Manager(Manager&&) noexcept = default;
Manager& Manager::operator=(Manager&& o) noexcept {
  if (this != &o) {
    shutdown();
    options_ = std::move(o.options_);
    address_ = std::move(o.address_);
    authkey_ = std::move(o.authkey_);
    server_ = std::move(o.server_);
    client_only_ = o.client_only_;
  }
  return *this;
}

Manager::~Manager() {
  shutdown();
}

void Manager::start() {
  if (client_only_) {
    throw ManagerError("Manager::start: a Manager from connect() reaches a server; it has none");
  }
  if (!owner_.here()) throw ManagerError(detail::not_owner_message("Manager", owner_.pid()));
  if (server_ && server_->is_alive()) throw ProcessError("Manager::start: the server already runs");
  const std::string requested =
      options_.address.empty() ? detail::private_unix_address() : options_.address;
  auto [reader, writer] = Pipe<std::string>(false);
  auto p =
      std::make_unique<Process>(detail::manager_server_main, requested, authkey_,
                                static_cast<std::int64_t>(options_.handshake_timeout.count()),
                                static_cast<std::uint64_t>(options_.max_clients),
                                static_cast<std::uint64_t>(options_.max_message_bytes), writer);
  p->name("SyncManager-" + std::to_string(::getpid()));
  p->daemon(true);
  p->start();
  writer.close();  // our copy: EOF if the server dies before it answers
  std::string status;
  try {
    if (!reader.poll(std::chrono::seconds(30))) throw EOFError("no answer in 30 s");
    status = reader.recv();
  } catch (const std::exception& e) {
    p->kill();
    p->join();
    throw ManagerError(std::string("the manager's server did not start: ") + e.what());
  }
  if (status.rfind("ok:", 0) != 0) {
    p->join(std::chrono::seconds(5));
    if (p->is_alive()) p->kill();
    p->join();
    throw ManagerError(status.rfind("error:", 0) == 0 ? status.substr(6) : status);
  }
  address_ = status.substr(3);
  server_ = std::move(p);
}

void Manager::shutdown() noexcept {
  if (!server_) return;
  if (!owner_.here()) {  // a fork child's copy: the server and its Process are the owner's
    detail::abandon(server_);
    return;
  }
  try {
    if (server_->is_alive()) {
      // Over a connection of its own, bounded: a server that is stopped (SIGSTOP) or wedged
      // gets SIGTERM, then SIGKILL, instead of holding the caller. No thread-local state is
      // touched, so a static Manager may be destroyed at exit.
      try {
        detail::request_shutdown(address_, authkey_, std::chrono::seconds(2));
      } catch (...) {
        server_->terminate();
        ::kill(server_->pid(), SIGCONT);  // a stopped server acts on SIGTERM only once running
      }
      if (!server_->join(std::chrono::seconds(5))) {
        server_->kill();
        server_->join();
      }
    } else {
      server_->join();
    }
  } catch (...) {
  }
  detail::forget_connection(address_, authkey_);  // this thread's, now dead (safe at exit)
  server_.reset();
}

bool Manager::running() const {
  if (server_ && owner_.here()) return server_->is_alive();
  try {
    detail::ProxyRef ref{address_, authkey_, 0, detail::ObjectKind::kDict, 0};
    detail::call(ref, detail::begin_request(0, detail::Op::kPing));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

pid_t Manager::pid() const noexcept {
  return server_ ? server_->pid() : 0;
}

detail::ProxyRef Manager::make(detail::ObjectKind kind, const std::string& name, std::uint64_t tag,
                               std::int64_t arg, const std::string& init) {
  if (address_.empty()) throw ManagerError("the Manager has not been started");
  return detail::create_object(address_, authkey_, kind, name, tag, arg, init);
}

}  // namespace mproc
