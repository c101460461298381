// Test helper: a program that forgets mproc::init. Asking for "forkserver" or "spawn" must be a
// clear StartMethodError naming the fix; "fork" must still work. Prints one line per attempt.
#include <mproc/mproc.hpp>

#include <cstdio>

int main() {
  for (const char* method : {"forkserver", "spawn"}) {
    try {
      mproc::PoolOptions o;
      o.processes = 1;
      o.start_method = mproc::parse_start_method(method);
      mproc::Pool pool(o);
      std::printf("%s: made a pool\n", method);
    } catch (const mproc::StartMethodError& e) {
      std::printf("%s: StartMethodError: %s\n", method, e.what());
    }
  }
  mproc::Pool pool(1);
  std::printf("fork: %d\n", pool.apply([](int x) { return x * 2; }, 21));
  return 0;
}
