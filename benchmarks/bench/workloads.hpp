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

// Must run before the first Pool is created: maps the page the respawn workload's dying
// workers write their time of death to (inherited by the zygote and every worker).
void prepare_shared_memory();

// True when a measurement missed its deadline and its pool was leaked rather than destroyed
// (a wedged pool's destructor would never return): leave with std::_Exit after reporting.
bool pools_abandoned();

}  // namespace bench
