// Runs the workloads: for each repetition, for each workload, for each engine, one sample —
// interleaved so that a change in the machine's speed hits every engine alike.
#pragma once

#include <vector>

#include "results.hpp"
#include "workloads.hpp"

namespace bench {

// Fills r.rows (and r.notes for engines that failed); draws a progress bar on stderr.
void run_interleaved(const std::vector<Workload>& workloads, Results& r);

// Every ratio the workloads define.
std::vector<RatioDef> ratio_defs(const std::vector<Workload>& workloads);

}  // namespace bench
