// The named shared-memory workloads of mproc-bench (shm_workloads.cpp): a reduction over a big
// array of doubles in shared memory, cut into SharedSpan slices (handles on the wire), against
// the serial loop, against the same data sent as std::vector<double> chunks, and against
// Python's shared_memory + memoryview (numpy when installed).
#pragma once

#include <string>
#include <vector>

#include "workloads.hpp"

namespace bench {

// `names` followed by the shared-memory workloads' names, in run order.
std::vector<std::string> append_shm_workload_names(std::vector<std::string> names);

// Appends the shared-memory workloads selected by `only` (all when empty) to `out`.
void add_shm_workloads(const Config& cfg, const std::vector<std::string>& only,
                       std::vector<Workload>& out, std::vector<std::string>& notes);

}  // namespace bench
