// A separately built program for the named shared-memory tests (another program, as a user's
// would be): it reaches blocks only by name.
//   shm_client attach NAME          reads word 0 of the block, writes word 0 + 1 into word 1,
//                                   prints "read=N"; exit 3 when there is no such block
//   shm_client create NAME SIZE T   creates NAME (tracked when T is 1), writes 0xC0FFEE into
//                                   word 0, prints "ready" and waits to be killed (exits 5
//                                   after 60 s so that nothing outlives a broken test)
// Exit 2: bad arguments; 4: any other error.
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mproc/mproc.hpp>
#include <string>

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  if (argc < 3) return 2;
  const std::string mode = argv[1];
  try {
    if (mode == "attach" && argc == 3) {
      auto shm = mproc::SharedMemory::attach(argv[2]);
      auto words = shm.as<std::uint64_t>();
      if (words.size() < 2) return 4;
      words[1] = words[0] + 1;
      std::printf("read=%llu\n", static_cast<unsigned long long>(words[0]));
      return 0;
    }
    if (mode == "create" && argc == 5) {
      const auto size = static_cast<std::size_t>(std::strtoull(argv[3], nullptr, 10));
      auto shm = mproc::SharedMemory::create(size, argv[2], std::string(argv[4]) == "1");
      shm.as<std::uint64_t>()[0] = 0xC0FFEE;
      std::printf("ready\n");
      std::fflush(stdout);
      for (int i = 0; i < 600; ++i) ::usleep(100000);
      return 5;
    }
  } catch (const mproc::SharedMemoryError& e) {
    std::printf("error: %s\n", e.what());
    return e.code() == ENOENT ? 3 : 4;
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 4;
  }
  return 2;
}
