// mproc-bench: mproc against its floors and against Python's multiprocessing.Pool.
//
//   mproc-bench                       # every workload, 5 repetitions, table on stdout
//   mproc-bench --quick               # smaller sizes, 3 repetitions, < 2 minutes with Python
//   mproc-bench --only apply,map --reps 9 --out-dir results/
//
// Repetitions are interleaved (for rep: for workload: for engine), and every ratio is computed
// within one repetition, then summarised by its median: a machine that slows down part-way
// slows both sides of a ratio.
#include <mproc/mproc.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "measure.hpp"
#include "plot.hpp"
#include "python_runner.hpp"
#include "report.hpp"
#include "results.hpp"
#include "workloads.hpp"

#ifndef MPROC_BENCH_PYTHON_SCRIPT
#define MPROC_BENCH_PYTHON_SCRIPT "benchmarks/python/mp_bench.py"
#endif

namespace {

std::vector<std::string> split_list(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) {
    std::stringstream ss(item);
    for (std::string s; std::getline(ss, s, ',');)
      if (!s.empty()) out.push_back(s);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // under mpirun, ranks 1..N-1 of the MPI row stay in here
  if (argc > 1 && std::string(argv[1]) == "--mpi-row") return bench::run_mpi_row(argc, argv);
  bench::prepare_shared_memory();  // before any pool: its workers inherit the page

  CLI::App app{
      "mproc-bench: mproc::Pool against raw socketpairs, thread pools and Python's "
      "multiprocessing.Pool"};
  bool quick = false, no_python = false, no_plot = false, no_mpi = false;
  int reps = 0;
  std::size_t workers = 2;
  std::vector<std::string> only_raw;
  std::string out_dir, python_script = MPROC_BENCH_PYTHON_SCRIPT;
  std::string names;
  for (const auto& n : bench::workload_names()) names += (names.empty() ? "" : ",") + n;
  app.add_flag("--quick", quick, "smaller sizes and 3 repetitions: under 2 minutes with Python");
  app.add_option("--reps", reps, "repetitions (default 5, or 3 with --quick)")
      ->check(CLI::PositiveNumber);
  app.add_option("--workers", workers, "worker processes / threads per pool")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--only", only_raw, "comma-separated workloads (" + names + ")")->delimiter(',');
  app.add_option("--out-dir", out_dir, "write results.json, results.csv and chart.png here");
  app.add_flag("--no-python", no_python, "skip the Python baselines");
  app.add_flag("--no-plot", no_plot, "do not draw chart.png");
  app.add_flag("--no-mpi", no_mpi, "skip the MPI row (map on MPI ranks, run under mpirun)");
  app.add_option("--python-script", python_script, "path of mp_bench.py")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const std::vector<std::string> only = split_list(only_raw);
  for (const auto& w : only) {
    const auto& all = bench::workload_names();
    if (std::find(all.begin(), all.end(), w) == all.end()) {
      std::fprintf(stderr, "mproc-bench: unknown workload '%s' (known: %s)\n", w.c_str(),
                   names.c_str());
      return 2;
    }
  }

  bench::Results results;
  results.machine = bench::describe_machine();
  results.reps = reps > 0 ? reps : (quick ? 3 : 5);
  results.workers = workers;
  results.quick = quick;

  bench::Config cfg;
  cfg.quick = quick;
  cfg.workers = workers;
  if (!no_python) {
    const auto py = bench::find_python3();
    if (!py) {
      results.notes.push_back("python3 not found on PATH: Python baselines skipped");
    } else if (!std::filesystem::exists(python_script)) {
      results.notes.push_back("no Python script at " + python_script +
                              " (see --python-script): Python baselines skipped");
    } else {
      cfg.python = bench::PythonRunner{*py, python_script, workers};
    }
  }
  if (!no_mpi) {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    const auto mpirun = bench::find_on_path("mpirun");
    if (!mproc::mpi::built_with_mpi()) {
      results.notes.push_back("mproc was built without MPI (MPROC_WITH_MPI): MPI row skipped");
    } else if (!mpirun) {
      results.notes.push_back("mpirun not found on PATH: MPI row skipped");
    } else if (ec) {
      results.notes.push_back("cannot read /proc/self/exe: MPI row skipped");
    } else {
      cfg.mpirun = *mpirun;
      cfg.self_exe = self.string();
    }
  }
  for (const auto& n : results.notes) std::fprintf(stderr, "mproc-bench: %s\n", n.c_str());

  if (!out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) {
      std::fprintf(stderr, "mproc-bench: cannot create %s: %s\n", out_dir.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  const auto workloads = bench::make_workloads(cfg, only, results.notes);
  bench::run_interleaved(workloads, results);
  results.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bench::summarise(results, bench::ratio_defs(workloads));

  bool chart = false;
  if (!out_dir.empty()) {
    try {
      bench::write_json(out_dir + "/results.json", results);
      bench::write_csv(out_dir + "/results.csv", results);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mproc-bench: %s\n", e.what());
      return 1;
    }
    if (!no_plot) {
      const std::string why = bench::write_chart(out_dir, results);
      chart = why.empty();
      if (!chart) results.notes.push_back(why);
    }
  }
  bench::print_table(stdout, results);
  if (!out_dir.empty()) {
    std::printf("\nwrote %s/results.json, %s/results.csv%s%s\n", out_dir.c_str(), out_dir.c_str(),
                chart ? ", " : "", chart ? (out_dir + "/chart.png").c_str() : "");
  }
  if (bench::pools_abandoned()) {
    // A wedged pool was leaked on purpose; do not run destructors under its I/O thread.
    std::fflush(nullptr);
    std::_Exit(3);
  }
  return 0;
}
