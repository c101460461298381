// chart.png: one bar per goal ratio, measured ÷ goal on a log scale (above 1 = goal met),
// drawn by gnuplot from chart.dat and chart.gp, which are left next to it for re-plotting.
#pragma once

#include <string>

#include "results.hpp"

namespace bench {

// Returns an empty string on success, otherwise why no chart was drawn.
std::string write_chart(const std::string& out_dir, const Results& r);

}  // namespace bench
