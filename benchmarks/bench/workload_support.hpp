// Helpers the workload files share: engines, Python baselines, ratios.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "workloads.hpp"

namespace bench {

// Sizes of one workload for mproc's engines and for the (slower) Python baseline.
struct Sizes {
  std::size_t cpp, python;
};

inline Engine engine(std::string name, std::string unit, std::size_t n,
                     std::function<std::optional<double>(std::string&)> run) {
  return Engine{std::move(name), std::move(unit), n, std::move(run)};
}

// Adds the Python baseline `engine_name` running mp_bench.py's `py_workload` (if Python runs).
inline void add_python(Workload& w, const Config& cfg, const std::string& engine_name,
                       const std::string& py_workload, const std::string& unit, std::size_t n) {
  if (!cfg.python) return;
  const PythonRunner runner = *cfg.python;
  w.engines.push_back(engine(engine_name, unit, n, [runner, py_workload, n](std::string& e) {
    return runner.run(py_workload, n, e);
  }));
}

inline RatioDef ratio(const std::string& workload, std::string name, std::string num,
                      std::string den, std::optional<double> goal = std::nullopt,
                      bool at_most = false) {
  return RatioDef{workload, std::move(name), std::move(num), std::move(den), goal, at_most};
}

}  // namespace bench
