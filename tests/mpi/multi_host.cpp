// The program tests/mpi/netns_test.sh runs across "hosts" (network namespaces, one rank each,
// OpenMPI's TCP transport between them): ordinary mproc code; it checks that the tasks ran in
// other network namespaces than the coordinator and that their results are right, that tasks
// crashing on remote hosts fail alone with WorkerLostError naming their host and rank while the
// job goes on, and it reports CPU-bound throughput against the number of worker hosts (the
// "hosts" share this machine's CPUs: a report, not a check).
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <mproc/mproc.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "../die_by_signal.hpp"

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

int crash_some(int x) {  // negative inputs crash their worker
  if (x < 0) mproc_test::die_by_signal(SIGSEGV);
  return x + 1;
}

// About a millisecond of arithmetic.
long burn(long seed) {
  unsigned long h = static_cast<unsigned long>(seed);
  for (int i = 0; i < 400'000; ++i) h = h * 6364136223846793005UL + 1442695040888963407UL;
  return static_cast<long>(h >> 1);
}

// Every 20th task crashes; the others must come back right (or, as on one machine, fail only
// because they finished on a crashing worker before its batched reply left).
bool crashes_stay_isolated(mproc::mpi::Pool& pool) {
  std::vector<mproc::AsyncResult<int>> rs;
  for (int i = 0; i < 400; ++i) rs.push_back(pool.apply_async(crash_some, i % 20 == 3 ? -1 : i));
  int lost = 0;
  for (int i = 0; i < 400; ++i) {
    try {
      const int v = rs[static_cast<std::size_t>(i)].get(std::chrono::seconds(30));
      if (i % 20 == 3 || v != i + 1) {
        std::printf("FAIL: task %d returned %d\n", i, v);
        return false;
      }
    } catch (const mproc::WorkerLostError& e) {
      const std::string what = e.what();
      if (what.find("MPI rank") == std::string::npos || what.find("on host") == std::string::npos) {
        std::printf("FAIL: the error does not say where the worker died: %s\n", what.c_str());
        return false;
      }
      if (i % 20 != 3 && what.find("before sending its result") == std::string::npos) {
        std::printf("FAIL: task %d was lost: %s\n", i, what.c_str());
        return false;
      }
      if (i % 20 == 3 && ++lost == 1) std::printf("a crash on a remote host: %s\n", what.c_str());
    }
  }
  std::printf("%d tasks crashed their workers on remote hosts; the rest came back\n", lost);
  return lost == 20;
}

void report_throughput(std::size_t hosts) {
  std::vector<long> in(600);
  std::iota(in.begin(), in.end(), 1L);
  double base = 0;
  for (std::size_t k = 1; k <= hosts; ++k) {
    mproc::mpi::Pool pool(k, 1);
    pool.map(burn, std::vector<long>(4 * k, 1L), 1);  // warm: every rank's pool is up
    const auto t0 = std::chrono::steady_clock::now();
    pool.map(burn, in, 4);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = static_cast<double>(in.size()) / s;
    if (k == 1) base = rate;
    std::printf("throughput: %zu worker host(s) x 1 worker: %.0f tasks/s (%.2fx one host)\n", k,
                rate, rate / base);
  }
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
  if (!crashes_stay_isolated(pool)) return 1;
  if (pool.apply(crash_some, 41) != 42) return 1;  // the ranks serve on
  pool.close();
  pool.join();
  report_throughput(static_cast<std::size_t>(mproc::mpi::world_size() - 1));
  std::printf("OK\n");
  return 0;
}
