// The measurement loop and the statistics.
#include "measure.hpp"

#include <malloc.h>

#include <mproc/progress.hpp>

#include <algorithm>
#include <exception>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace bench {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

void run_interleaved(const std::vector<Workload>& workloads, Results& r) {
  std::size_t steps = 0;
  for (const auto& w : workloads) steps += w.engines.size();
  steps *= static_cast<std::size_t>(r.reps);

  // Rows in workload / engine order, created up front so the output order never depends on
  // which engine happened to fail.
  std::map<std::pair<std::string, std::string>, std::size_t> index;
  for (const auto& w : workloads) {
    for (const auto& e : w.engines) {
      index[{w.name, e.name}] = r.rows.size();
      r.rows.push_back(Row{w.name, e.name, e.unit, e.n, {}, {}});
    }
  }

  std::set<std::pair<std::string, std::string>> failed;  // one note per engine, not per rep
  mproc::ProgressBar bar(steps, mproc::progress("mproc-bench"));
  bar.draw(true);
  for (int rep = 0; rep < r.reps; ++rep) {
    for (const auto& w : workloads) {
      for (const auto& e : w.engines) {
        std::string error;
        std::optional<double> v;
        // An engine that failed once is not run again: its note says why.
        if (failed.count({w.name, e.name}) == 0) {
          // Give freed heap back first: a pool's zygote is a fork of this process, and worker
          // start-up cost grows with its size, so no measurement may inherit the previous one's
          // garbage (see the respawn / maxtasks notes in the report).
          ::malloc_trim(0);
          try {
            v = e.run(error);
          } catch (const std::exception& ex) {
            error = ex.what();
          }
        }
        if (v) {
          Row& row = r.rows[index[{w.name, e.name}]];
          row.samples.push_back(*v);
          row.reps.push_back(rep);
        } else if (failed.insert({w.name, e.name}).second) {
          r.notes.push_back(w.name + " / " + e.name + " (repetition " + std::to_string(rep + 1) +
                            "): " + error);
        }
        bar.add(1);
        bar.draw();
      }
    }
  }
  bar.finish();
}

std::vector<RatioDef> ratio_defs(const std::vector<Workload>& workloads) {
  std::vector<RatioDef> defs;
  for (const auto& w : workloads) defs.insert(defs.end(), w.ratios.begin(), w.ratios.end());
  return defs;
}

void summarise(Results& r, const std::vector<RatioDef>& defs) {
  for (auto& row : r.rows) {
    if (row.samples.empty()) continue;
    row.median = median_of(row.samples);
    row.min = *std::min_element(row.samples.begin(), row.samples.end());
    row.max = *std::max_element(row.samples.begin(), row.samples.end());
  }
  auto find = [&](const std::string& workload, const std::string& engine) -> const Row* {
    for (const auto& row : r.rows)
      if (row.workload == workload && row.engine == engine) return &row;
    return nullptr;
  };
  for (const auto& d : defs) {
    const Row* num = find(d.workload, d.numerator);
    const Row* den = find(d.workload, d.denominator);
    if (num == nullptr || den == nullptr) continue;  // e.g. no Python
    Ratio q{d, 0, 0, 0, {}};
    // Pair the samples of the same repetition.
    for (std::size_t i = 0; i < num->samples.size(); ++i) {
      for (std::size_t j = 0; j < den->samples.size(); ++j) {
        if (num->reps[i] == den->reps[j] && den->samples[j] != 0)
          q.per_rep.push_back(num->samples[i] / den->samples[j]);
      }
    }
    if (q.per_rep.empty()) {  // an engine failed: keep the ratio, as n/a
      if (!num->samples.empty() || !den->samples.empty()) r.ratios.push_back(std::move(q));
      continue;
    }
    q.value = median_of(q.per_rep);
    q.min = *std::min_element(q.per_rep.begin(), q.per_rep.end());
    q.max = *std::max_element(q.per_rep.begin(), q.per_rep.end());
    r.ratios.push_back(std::move(q));
  }
}

}  // namespace bench
