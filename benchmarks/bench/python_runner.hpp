// Runs benchmarks/python/mp_bench.py as a subprocess and reads the rate it prints.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace bench {

// The full path of `program` on PATH, or nullopt.
std::optional<std::string> find_on_path(const std::string& program);
inline std::optional<std::string> find_python3() {
  return find_on_path("python3");
}

// Runs `cmd` (a shell command line; stderr joins stdout) and returns the number after the last
// `"value":` it printed, or nullopt with `error` set (`what`, exit status, tail of the output).
std::optional<double> run_for_value(const std::string& cmd, const std::string& what,
                                    std::string& error);
std::string shell_quote(const std::string& s);

struct PythonRunner {
  std::string exe;     // python3
  std::string script;  // mp_bench.py
  std::size_t workers = 2;

  // `python3 mp_bench.py --workload W --n N --workers K`; returns its JSON "value", or nullopt
  // with `error` set (exit status and the tail of its output) when it fails.
  std::optional<double> run(const std::string& workload, std::size_t n, std::string& error) const;
};

}  // namespace bench
