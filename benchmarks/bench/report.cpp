// Table, JSON (nlohmann/json, Debian nlohmann-json3-dev) and CSV writers.
#include "report.hpp"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace bench {
namespace {

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f || !(f << text) || !f.flush()) throw std::runtime_error("cannot write " + path);
}

}  // namespace

std::string si(double v) {
  const char* suffix = "";
  double a = std::fabs(v);
  if (a >= 1e9) {
    v /= 1e9, suffix = "G";
  } else if (a >= 1e6) {
    v /= 1e6, suffix = "M";
  } else if (a >= 1e3) {
    v /= 1e3, suffix = "k";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", v, suffix);
  return buf;
}

std::string goal_text(const Ratio& q) {
  if (!q.def.goal) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s %gx", q.def.at_most ? "<=" : ">=", *q.def.goal);
  return buf;
}

void print_table(std::FILE* out, const Results& r) {
  std::fprintf(out, "\nmproc-bench: %zu CPUs (%s), %zu workers, %d reps%s, %s, %.0f s\n",
               r.machine.cpus, r.machine.model.c_str(), r.workers, r.reps,
               r.quick ? " (quick)" : "", r.machine.date.c_str(), r.wall_seconds);
  std::fprintf(out, "\n%-12s %-18s %9s %-14s %10s %10s %10s\n", "workload", "engine", "n", "unit",
               "median", "min", "max");
  std::string last;
  for (const auto& row : r.rows) {
    if (row.workload != last && !last.empty()) std::fputc('\n', out);
    last = row.workload;
    if (row.samples.empty()) {
      std::fprintf(out, "%-12s %-18s %9zu %-14s %10s\n", row.workload.c_str(), row.engine.c_str(),
                   row.n, row.unit.c_str(), "(failed)");
      continue;
    }
    std::fprintf(out, "%-12s %-18s %9zu %-14s %10s %10s %10s\n", row.workload.c_str(),
                 row.engine.c_str(), row.n, row.unit.c_str(), si(row.median).c_str(),
                 si(row.min).c_str(), si(row.max).c_str());
  }
  std::fprintf(out, "\nratios (per repetition, median [min..max]):\n");
  std::fprintf(out, "%-12s %-32s %9s %-17s %-9s %s\n", "workload", "ratio", "value", "[min..max]",
               "goal", "");
  for (const auto& q : r.ratios) {
    if (q.per_rep.empty()) {
      std::fprintf(out, "%-12s %-32s %9s %-17s %-9s %s\n", q.def.workload.c_str(),
                   q.def.name.c_str(), "n/a", "(no paired result)", goal_text(q).c_str(),
                   !q.def.goal ? "" : "NOT MET (no result)");
      continue;
    }
    char range[48];
    std::snprintf(range, sizeof range, "[%.3g..%.3g]", q.min, q.max);
    std::fprintf(out, "%-12s %-32s %8.3gx %-17s %-9s %s\n", q.def.workload.c_str(),
                 q.def.name.c_str(), q.value, range, goal_text(q).c_str(),
                 !q.def.goal ? "" : (q.met() ? "met" : "NOT MET"));
  }
  if (!r.notes.empty()) {
    std::fprintf(out, "\nnotes:\n");
    for (const auto& n : r.notes) std::fprintf(out, "  - %s\n", n.c_str());
  }
  std::fflush(out);
}

// A number, or null where the measurement is missing (JSON has no NaN).
nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json numbers(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(number(x));
  return a;
}

void write_json(const std::string& path, const Results& r) {
  using nlohmann::json;
  json doc;
  doc["machine"] = {{"cpus", r.machine.cpus}, {"model", r.machine.model}, {"date", r.machine.date}};
  doc["reps"] = r.reps;
  doc["workers"] = r.workers;
  doc["quick"] = r.quick;
  doc["wall_seconds"] = number(r.wall_seconds);
  json rows = json::array();
  for (const Row& row : r.rows) {
    const bool any = !row.samples.empty();
    rows.push_back({{"workload", row.workload},
                    {"engine", row.engine},
                    {"unit", row.unit},
                    {"n", row.n},
                    {"median", any ? number(row.median) : json(nullptr)},
                    {"min", any ? number(row.min) : json(nullptr)},
                    {"max", any ? number(row.max) : json(nullptr)},
                    {"samples", numbers(row.samples)}});
  }
  doc["rows"] = std::move(rows);
  json ratios = json::array();
  for (const Ratio& q : r.ratios) {
    const bool any = !q.per_rep.empty();
    ratios.push_back({{"workload", q.def.workload},
                      {"name", q.def.name},
                      {"numerator", q.def.numerator},
                      {"denominator", q.def.denominator},
                      {"value", any ? number(q.value) : json(nullptr)},
                      {"min", any ? number(q.min) : json(nullptr)},
                      {"max", any ? number(q.max) : json(nullptr)},
                      {"per_rep", numbers(q.per_rep)},
                      {"goal", q.def.goal ? number(*q.def.goal) : json(nullptr)},
                      {"goal_is", !q.def.goal     ? "none"
                                  : q.def.at_most ? "max"
                                                  : "min"},
                      {"met", q.def.goal ? json(q.met()) : json(nullptr)}});
  }
  doc["ratios"] = std::move(ratios);
  doc["notes"] = r.notes;
  write_file(path, doc.dump(2) + "\n");
}

void write_csv(const std::string& path, const Results& r) {
  std::ostringstream o;
  o << "workload,engine,unit,n,median,min,max,samples\n";
  for (const auto& row : r.rows) {
    o << csv_field(row.workload) << ',' << csv_field(row.engine) << ',' << csv_field(row.unit)
      << ',' << row.n << ',';
    if (!row.samples.empty())
      o << num(row.median) << ',' << num(row.min) << ',' << num(row.max);
    else
      o << ",,";
    o << ',';
    for (std::size_t j = 0; j < row.samples.size(); ++j) o << (j ? ";" : "") << num(row.samples[j]);
    o << '\n';
  }
  write_file(path, o.str());
}

}  // namespace bench
