// A separately built program that reaches a TCP Manager as a client (the test runs it with the
// server's address and a key): increments a named counter under a named Lock, and checks that
// update_with is refused because this is not the server's executable.
//   exit 0: worked ("hits=N"); 3: authentication refused; 4: update_with was not refused;
//   5: the manager could not be reached.
// With "--static-manager ''" it instead runs a Manager held in a static, destroyed at exit.
#include <cstdio>
#include <mproc/mproc.hpp>
#include <mutex>
#include <string>

namespace {
int add_one(int x) {
  return x + 1;
}
}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  if (argc == 3 && std::string(argv[1]) == "--static-manager") {
    // Destroyed after main returns, among the other statics and thread-locals.
    static mproc::Manager manager;
    auto d = manager.dict<int, int>();
    d.set(1, 42);
    std::printf("static manager: %d\n", d.get(1));
    return 0;
  }
  if (argc != 3) return 2;
  try {
    auto m = mproc::Manager::connect(argv[1], argv[2]);
    auto d = m.dict<std::string, int>("shared");
    auto lock = m.Lock("shared-lock");
    {
      std::lock_guard guard(lock);
      d.set("hits", d.get("hits", 0) + 1);
    }
    try {
      d.update_with("hits", add_one);
      return 4;
    } catch (const mproc::SerializationError& e) {
      std::printf("update_with refused: %s\n", e.what());
    }
    std::printf("hits=%d\n", d.get("hits"));
    return 0;
  } catch (const mproc::AuthenticationError& e) {
    std::printf("refused: %s\n", e.what());
    return 3;
  } catch (const mproc::ManagerError& e) {
    std::printf("unreachable: %s\n", e.what());
    return 5;
  }
}
