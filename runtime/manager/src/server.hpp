// The entry point of a Manager's server process. Internal.
#pragma once

#include <cstdint>
#include <string>

#include "mproc/connection.hpp"

namespace mproc::detail {

struct ManagerServerConfig {
  std::string authkey;
  std::int64_t handshake_timeout_ms;
  std::uint64_t max_clients;
  std::uint64_t max_message_bytes;
};

// The target of the server's mproc::Process: listens on `address`, sends "ok:<bound address>"
// or "error:<why>" through `ready`, then serves until a client asks it to shut down.
void manager_server_main(std::string address, std::string authkey, std::int64_t handshake_ms,
                         std::uint64_t max_clients, std::uint64_t max_message,
                         Connection<std::string> ready);

}  // namespace mproc::detail
