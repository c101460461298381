// The mproc::Manager workloads of mproc-bench (manager_workloads.cpp): proxy round-trip latency
// (manager-call) and update_with throughput from 1 and 8 client processes (manager-clients).
#pragma once

#include <string>
#include <vector>

#include "workloads.hpp"

namespace bench {

// `names` followed by the Manager workloads' names, in run order.
std::vector<std::string> append_manager_workload_names(std::vector<std::string> names);

// Appends the Manager workloads selected by `only` (all when empty) to `out`.
void add_manager_workloads(const Config& cfg, const std::vector<std::string>& only,
                           std::vector<Workload>& out, std::vector<std::string>& notes);

}  // namespace bench
