// What a run produces: one row per (workload, engine) with a sample per repetition, and ratios
// between engines of the same workload, each computed within one repetition (so drift in the
// machine's speed hits numerator and denominator alike) and summarised by their median.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace bench {

struct Machine {
  std::size_t cpus = 0;  // the affinity mask (what a pool can use)
  std::string model;     // "model name" from /proc/cpuinfo
  std::string date;      // ISO 8601, UTC
};

Machine describe_machine();

struct Row {
  std::string workload;
  std::string engine;
  std::string unit;
  std::size_t n = 0;            // items / calls / tasks per measurement
  std::vector<double> samples;  // one per repetition that produced a value
  std::vector<int> reps;        // the repetition of each sample
  double median = 0, min = 0, max = 0;
};

// value = metric(numerator) / metric(denominator), per repetition. A goal is met when the
// value is >= goal (or <= goal when at_most). No goal: reported, not judged.
struct RatioDef {
  std::string workload;
  std::string name;
  std::string numerator;
  std::string denominator;
  std::optional<double> goal;
  bool at_most = false;
};

struct Ratio {
  RatioDef def;
  double value = 0;  // median of per_rep
  double min = 0, max = 0;
  std::vector<double> per_rep;
  // No per_rep values: an engine produced no result (the ratio is reported as n/a, not met).
  bool met() const {
    if (!def.goal) return true;
    if (per_rep.empty()) return false;
    return def.at_most ? value <= *def.goal : value >= *def.goal;
  }
};

struct Results {
  Machine machine;
  int reps = 0;
  std::size_t workers = 0;
  bool quick = false;
  double wall_seconds = 0;
  std::vector<Row> rows;
  std::vector<Ratio> ratios;
  std::vector<std::string> notes;
};

double median_of(std::vector<double> v);

// Fills each row's median / min / max and computes the ratios from the rows.
void summarise(Results& r, const std::vector<RatioDef>& defs);

}  // namespace bench
