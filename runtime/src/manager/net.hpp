// Manager addresses and the authentication handshake. Internal to the manager's sources.
#pragma once

#include <string>

#include "manager/channel.hpp"
#include "mproc/runtime/fd.hpp"

namespace mproc::detail {

// A fresh private address: an abstract Unix socket named after this process.
std::string private_unix_address();

// Binds and listens on `address` (see manager.hpp for the forms). Returns the socket and sets
// `bound` to the address clients should use (the real port for "tcp:HOST:0").
// Throws ManagerError naming the address and the reason.
UniqueFd listen_on(const std::string& address, std::string& bound);

// Connects to `address`. Throws ManagerError ("no manager is listening at ...").
UniqueFd connect_to(const std::string& address);

// TCP_NODELAY and keepalive on an accepted TCP socket (see address.cpp).
void tune_accepted(int fd) noexcept;

// Bounds the handshake: a peer that stalls it gets EAGAIN (or 0: no bound).
void set_io_timeout(int fd, long long ms) noexcept;

// Python's multiprocessing.connection challenge-response, with HMAC-SHA256 (libsodium):
// deliver_challenge sends 32 random bytes and checks the peer's HMAC of them under `key`;
// answer_challenge proves knowledge of `key` to a peer that delivers one. The server delivers
// then answers; the client answers then delivers, so each side knows the other has the key.
// Throw AuthenticationError on a wrong digest or any failure of the peer during the exchange.
void deliver_challenge(Channel& c, const std::string& key);
void answer_challenge(Channel& c, const std::string& key);

// 32 random bytes (as a string) for a Manager without an explicit authkey.
std::string random_authkey();

}  // namespace mproc::detail
