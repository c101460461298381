// Table, JSON and CSV writers (no JSON library: the structure is fixed and small).
#include "report.hpp"

#include <cmath>
#include <fstream>
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

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
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

void write_json(const std::string& path, const Results& r) {
  std::ostringstream o;
  o << "{\n  \"machine\": {\"cpus\": " << r.machine.cpus
    << ", \"model\": " << json_string(r.machine.model)
    << ", \"date\": " << json_string(r.machine.date) << "},\n";
  o << "  \"reps\": " << r.reps << ",\n  \"workers\": " << r.workers
    << ",\n  \"quick\": " << (r.quick ? "true" : "false")
    << ",\n  \"wall_seconds\": " << num(r.wall_seconds) << ",\n";
  o << "  \"rows\": [";
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const Row& row = r.rows[i];
    o << (i ? ",\n" : "\n") << "    {\"workload\": " << json_string(row.workload)
      << ", \"engine\": " << json_string(row.engine) << ", \"unit\": " << json_string(row.unit)
      << ", \"n\": " << row.n;
    if (row.samples.empty()) {
      o << ", \"median\": null, \"min\": null, \"max\": null";
    } else {
      o << ", \"median\": " << num(row.median) << ", \"min\": " << num(row.min)
        << ", \"max\": " << num(row.max);
    }
    o << ", \"samples\": [";
    for (std::size_t j = 0; j < row.samples.size(); ++j)
      o << (j ? ", " : "") << num(row.samples[j]);
    o << "]}";
  }
  o << "\n  ],\n  \"ratios\": [";
  for (std::size_t i = 0; i < r.ratios.size(); ++i) {
    const Ratio& q = r.ratios[i];
    o << (i ? ",\n" : "\n") << "    {\"workload\": " << json_string(q.def.workload)
      << ", \"name\": " << json_string(q.def.name)
      << ", \"numerator\": " << json_string(q.def.numerator)
      << ", \"denominator\": " << json_string(q.def.denominator);
    if (q.per_rep.empty()) {
      o << ", \"value\": null, \"min\": null, \"max\": null";
    } else {
      o << ", \"value\": " << num(q.value) << ", \"min\": " << num(q.min)
        << ", \"max\": " << num(q.max);
    }
    o << ", \"per_rep\": [";
    for (std::size_t j = 0; j < q.per_rep.size(); ++j) o << (j ? ", " : "") << num(q.per_rep[j]);
    o << "], \"goal\": " << (q.def.goal ? num(*q.def.goal) : "null") << ", \"goal_is\": "
      << json_string(!q.def.goal     ? "none"
                     : q.def.at_most ? "max"
                                     : "min")
      << ", \"met\": "
      << (!q.def.goal ? "null"
          : q.met()   ? "true"
                      : "false")
      << "}";
  }
  o << "\n  ],\n  \"notes\": [";
  for (std::size_t i = 0; i < r.notes.size(); ++i)
    o << (i ? ",\n" : "\n") << "    " << json_string(r.notes[i]);
  o << (r.notes.empty() ? "]\n}\n" : "\n  ]\n}\n");
  write_file(path, o.str());
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
