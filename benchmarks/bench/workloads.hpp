// The workloads of mproc-bench: each has engines (mproc and its baselines) that each measure
// one sample of the workload's metric, and the ratios (with goals) between them.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "python_runner.hpp"
#include "results.hpp"

namespace bench {

struct Config {
  bool quick = false;
  std::size_t workers = 2;
  std::optional<PythonRunner> python;  // nullopt: no Python baselines
  // mpirun and this executable's path: the MPI rows of map and apply run `mpirun -n
  // workers+1 mproc-bench --mpi-row map|apply ...`. nullopt: no MPI rows.
  std::optional<std::string> mpirun;
  std::string self_exe;
};

struct Engine {
  std::string name;  // mproc, mproc-threads, std-threadpool, socketpair, serial, python, ...
  std::string unit;
  std::size_t n = 0;
  // One measurement; nullopt (with `error` set) when the engine could not run.
  std::function<std::optional<double>(std::string& error)> run;
};

struct Workload {
  std::string name;
  std::string description;
  std::vector<Engine> engines;
  std::vector<RatioDef> ratios;
};

// Every workload's name, in run order.
const std::vector<std::string>& workload_names();

// Builds the selected workloads (all when `only` is empty). Appends notes (e.g. calibration).
std::vector<Workload> make_workloads(const Config& cfg, const std::vector<std::string>& only,
                                     std::vector<std::string>& notes);

// mproc-bench --mpi-row WORKLOAD --n N --workers K, as rank 0 under mpirun: measures one
// sample on mproc::mpi::Pool(K) and prints it as {"value": ...}. Returns the exit code.
int run_mpi_row(int argc, char** argv);

// Must run before the first Pool is created: maps the page the respawn workload's dying
// workers write their time of death to (inherited by the zygote and every worker).
void prepare_shared_memory();

// True when a measurement missed its deadline and its pool was leaked rather than destroyed
// (a wedged pool's destructor would never return): leave with std::_Exit after reporting.
bool pools_abandoned();

}  // namespace bench
