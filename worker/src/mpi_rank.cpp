// Ranks of an mpirun job: MPI set-up in mproc::init, a worker rank's start and end around the
// body that serves pools (pool/src/mpi_rank_host.cpp), and rank 0's shutdown of the job at
// exit. Built only with MPROC_WITH_MPI.
#include "mproc/worker/detail/mpi_rank.hpp"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mproc/logging.hpp"
#include "mproc/process_info.hpp"

namespace mproc::detail::mpi_rank {
namespace {

// How long rank 0's exit waits for ranks to confirm their pools ended before it aborts the job.
// A rank ends its pool by killing its workers, so this passes only when a rank itself hangs.
constexpr auto kExitDrainDeadline = std::chrono::seconds(10);
Rank0State* g_rank0 = nullptr;

const char* env(const char* name) noexcept {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

// Rank 0 at exit: lets ranks finish what earlier pools abandoned, then shuts the job down.
void finalize_rank0() {
  if (rank0() == nullptr) return;  // a forked child of rank 0 leaving through exit()
  Rank0State& s = *g_rank0;
  std::lock_guard lock(s.mu);
  if (s.finalized) return;
  s.finalized = true;
  const auto deadline = std::chrono::steady_clock::now() + kExitDrainDeadline;
  Backoff idle;
  while (!settle_leftovers(s)) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr,
                   "mproc: MPI ranks did not confirm the end of their pools %lld s after the "
                   "program ended; aborting the job\n",
                   static_cast<long long>(kExitDrainDeadline.count()));
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    idle.wait();
  }
  for (int r = 1; r < s.world_size; ++r) {
    MPI_Send(nullptr, 0, MPI_BYTE, r, kTagShutdown, MPI_COMM_WORLD);
  }
  MPI_Finalize();
}

}  // namespace

Rank0State* rank0() noexcept {
  return g_rank0 != nullptr && g_rank0->pid == ::getpid() ? g_rank0 : nullptr;
}

int rank_from_environment() noexcept {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* v = env(name)) return std::atoi(v);
  }
  return -1;
}

bool settle_leftovers(Rank0State& s) {
  for (auto it = s.leftovers.begin(); it != s.leftovers.end();) {
    it = (*it)() ? s.leftovers.erase(it) : it + 1;
  }
  Bytes sink;
  bool owed = false;
  for (int r = 1; r < s.world_size; ++r) {
    while (s.owed[static_cast<std::size_t>(r)] > 0) {
      int flag = 0;
      MPI_Message msg;
      MPI_Status st;
      MPI_Improbe(r, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &msg, &st);
      if (!flag) break;
      int n = 0;
      MPI_Get_count(&st, MPI_BYTE, &n);
      sink.resize(static_cast<std::size_t>(n));
      MPI_Mrecv(sink.data(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
      if (st.MPI_TAG != kTagControl) continue;  // a reply to an ended pool's task
      const std::optional<ParsedControl> c = parse_control(sink);
      if (c && c->control.kind == ControlKind::kEnded) --s.owed[static_cast<std::size_t>(r)];
    }
    owed = owed || s.owed[static_cast<std::size_t>(r)] > 0;
  }
  return s.leftovers.empty() && !owed;
}

void enter_if_mpi_rank(int argc, char** argv, RankBody body) {
  const int env_rank = rank_from_environment();
  if (env_rank < 0) return;
  int provided = 0;
  // Rank 0 calls MPI from its main thread (here and at exit) and from one pool I/O thread at a
  // time, under Rank0State::mu: serialised, never concurrent.
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "mproc: MPI_Init_thread failed\n");
    std::exit(1);
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    std::fprintf(stderr, "mproc: this MPI library does not offer MPI_THREAD_SERIALIZED\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != 0) {
    set_process_name("MpiPoolWorker-" + std::to_string(rank));
    get_logger()->debug("MPI worker rank {} started", rank);
    body(rank);
    get_logger()->debug("MPI worker rank {} shutting down", rank);
    MPI_Finalize();
    std::fflush(nullptr);
    ::_exit(0);
  }
  g_rank0 = new Rank0State;  // lives until exit: finalize_rank0 runs from atexit
  g_rank0->pid = ::getpid();
  g_rank0->world_size = size;
  g_rank0->owed.assign(static_cast<std::size_t>(size), 0);
  std::atexit(&finalize_rank0);
}

}  // namespace mproc::detail::mpi_rank
