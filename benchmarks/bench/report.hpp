// The outputs of a run: a table on a stream, results.json and results.csv.
#pragma once

#include <cstdio>
#include <string>

#include "results.hpp"

namespace bench {

void print_table(std::FILE* out, const Results& r);
// Both throw std::runtime_error when the file cannot be written.
void write_json(const std::string& path, const Results& r);
void write_csv(const std::string& path, const Results& r);

// "1.23M", "45.6k", "12.3": three significant digits with an SI suffix.
std::string si(double v);
// "<= 1.3x" / ">= 30x" / "-".
std::string goal_text(const Ratio& q);

}  // namespace bench
