// Manager addresses and the authentication handshake. Internal to the manager's sources.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "channel.hpp"
#include "mproc/runtime/detail/fd.hpp"

namespace mproc::detail {

// A fresh private address: an abstract Unix socket named after this process.
std::string private_unix_address();

// Binds and listens on `address` (see manager.hpp for the forms). Returns the socket and sets
// `bound` to the address clients should use (the real port for "tcp:HOST:0").
// Throws ManagerError naming the address and the reason.
UniqueFd listen_on(const std::string& address, std::string& bound);

// Connects to `address` within `timeout_ms` (0: the kernel's own limits). Throws ManagerError
// ("no manager is listening at ...").
UniqueFd connect_to(const std::string& address, long long timeout_ms = 0);

// A new, authenticated connection (connect, handshake and hello within `limit`), not cached.
// Throws ManagerError, AuthenticationError.
inline constexpr std::chrono::milliseconds kConnectTimeout{10000};
std::unique_ptr<Channel> open_connection(const std::string& address, const std::string& authkey,
                                         std::chrono::milliseconds limit);

// Asks the server to shut down over a connection of its own (not this thread's cached one, so
// it works from a static destructor), all within `limit`. Throws on any failure.
void request_shutdown(const std::string& address, const std::string& authkey,
                      std::chrono::milliseconds limit);

// TCP_NODELAY and keepalive on an accepted TCP socket (see address.cpp).
void tune_accepted(int fd) noexcept;

// SO_RCVTIMEO / SO_SNDTIMEO (0: none). The send side bounds a blocking connect() too.
void set_io_timeout(int fd, long long ms) noexcept;

// Python's multiprocessing.connection challenge-response, with HMAC-SHA256 (libsodium):
// deliver_challenge sends 32 random bytes and checks the peer's HMAC of (role ":" nonce) under
// `key`; answer_challenge proves knowledge of `key` to a peer that delivers one. The server
// delivers then answers; the client answers then delivers, so each side knows the other has the
// key. The role in the MAC ("client", "server") keeps one side's answers from ever passing for
// the other's (a reflection through a second connection).
// Throw AuthenticationError on a wrong digest or garbage, ManagerError when the peer goes away
// or misses the channel's deadline during the exchange.
inline constexpr std::string_view kClientRole = "client";
inline constexpr std::string_view kServerRole = "server";
void deliver_challenge(Channel& c, const std::string& key, std::string_view peer_role);
void answer_challenge(Channel& c, const std::string& key, std::string_view my_role);

// 32 random bytes (as a string) for a Manager without an explicit authkey.
std::string random_authkey();

}  // namespace mproc::detail
