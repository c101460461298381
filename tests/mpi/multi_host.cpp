// The program tests/mpi/netns_test.sh runs across "hosts" (network namespaces, one rank each,
// OpenMPI's TCP transport between them): ordinary mproc code; it checks that the tasks ran in
// other network namespaces than the coordinator and that their results are right.
#include <unistd.h>

#include <cstdio>
#include <mproc/mproc.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace {

long square(long x) {
  return x * x;
}

// The inode of this process's network namespace: different on each simulated host.
std::string network_namespace(int) {
  char buf[64] = {};
  const ssize_t n = ::readlink("/proc/self/ns/net", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("?");
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::mpi::Pool pool;
  std::vector<long> in(10'000);
  std::iota(in.begin(), in.end(), 0L);
  const auto out = pool.map(square, in);
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (out[i] != in[i] * in[i]) {
      std::printf("FAIL: result %zu is %ld\n", i, out[i]);
      return 1;
    }
  }
  std::set<std::string> spaces{network_namespace(0)};
  for (const auto& s : pool.map(network_namespace, std::vector<int>(32, 0), 1)) spaces.insert(s);
  std::printf("%zu results correct; %zu ranks ran in %zu network namespaces\n", out.size(),
              pool.processes() + 1, spaces.size());
  if (spaces.size() != pool.processes() + 1) {
    std::printf("FAIL: expected every rank in its own namespace\n");
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
