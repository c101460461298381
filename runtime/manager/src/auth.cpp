// The Manager's handshake: Python's challenge-response (multiprocessing.connection
// deliver_challenge / answer_challenge), with HMAC-SHA256 from libsodium.
#include <sodium.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

#include "mproc/errors.hpp"
#include "net.hpp"

namespace mproc::detail {
namespace {

constexpr std::string_view kChallenge = "#CHALLENGE#";
constexpr std::string_view kWelcome = "#WELCOME#";
constexpr std::string_view kFailure = "#FAILURE#";
constexpr std::size_t kNonceBytes = 32;
constexpr std::size_t kMaxHandshakeMessage = 256;

void init_sodium() {
  static const int rc = ::sodium_init();  // thread-safe, idempotent; < 0 only without entropy
  if (rc < 0) throw AuthenticationError("libsodium could not be initialised");
}

std::string hmac(const std::string& key, std::string_view message) {
  unsigned char out[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  ::crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()),
                                key.size());
  ::crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(message.data()),
                                  message.size());
  ::crypto_auth_hmacsha256_final(&st, out);
  ::sodium_memzero(&st, sizeof st);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string recv_small(Channel& c) {
  Bytes b;
  c.recv(b, kMaxHandshakeMessage);
  return std::string(b.begin(), b.end());
}

void send(Channel& c, std::string_view s) {
  c.send({s.data(), s.size()});
}

// Whatever the peer does wrong during the exchange (EOF, garbage, a stall past the timeout) is
// a failed authentication, never another error type or a hang.
template <class F>
void guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const AuthenticationError&) {
    throw;
  } catch (const EOFError& e) {
    // The peer went away (a server shutting down or killed): not a question of keys.
    throw ManagerError(std::string("the connection closed during the handshake: ") + e.what());
  } catch (const BrokenPipeError& e) {
    throw ManagerError(std::string("the connection closed during the handshake: ") + e.what());
  } catch (const std::system_error& e) {  // a reset, or a peer silent past the timeout
    throw ManagerError(std::string("the handshake failed: ") + e.what());
  } catch (const std::exception& e) {
    throw AuthenticationError(std::string(what) + ": " + e.what());
  }
}

}  // namespace

std::string random_authkey() {
  init_sodium();
  std::string key(32, '\0');
  ::randombytes_buf(key.data(), key.size());
  return key;
}

void deliver_challenge(Channel& c, const std::string& key, std::string_view peer_role) {
  init_sodium();
  guarded("authentication failed", [&] {
    std::string nonce(kNonceBytes, '\0');
    ::randombytes_buf(nonce.data(), nonce.size());
    send(c, std::string(kChallenge) + nonce);
    const std::string response = recv_small(c);
    const std::string expected = hmac(key, std::string(peer_role) + ":" + nonce);
    const bool ok = response.size() == expected.size() &&
                    ::sodium_memcmp(response.data(), expected.data(), expected.size()) == 0;
    if (!ok) {
      try {
        send(c, kFailure);
      } catch (...) {  // the peer may be gone already: the verdict is the same
      }
      throw AuthenticationError("digest received was wrong (the peer does not have the authkey)");
    }
    send(c, kWelcome);
  });
}

void answer_challenge(Channel& c, const std::string& key, std::string_view my_role) {
  init_sodium();
  guarded("authentication failed", [&] {
    const std::string message = recv_small(c);
    if (message.size() != kChallenge.size() + kNonceBytes ||
        message.compare(0, kChallenge.size(), kChallenge) != 0) {
      throw AuthenticationError("the peer did not send a challenge (not an mproc manager?)");
    }
    send(c, hmac(key, std::string(my_role) + ":" + message.substr(kChallenge.size())));
    if (recv_small(c) != kWelcome) {
      throw AuthenticationError("digest sent was rejected (wrong authkey)");
    }
  });
}

}  // namespace mproc::detail
