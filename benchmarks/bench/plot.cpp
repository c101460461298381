// Writes chart.dat and chart.gp into the output directory and runs gnuplot on them.
#include "plot.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "report.hpp"

namespace bench {
namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Output of a shell command (stderr included), or nullopt if it could not run.
std::string capture(const std::string& cmd, int& status) {
  std::string out;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    status = -1;
    return out;
  }
  char buf[4096];
  for (std::size_t got; (got = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, got);
  status = ::pclose(p);
  return out;
}

}  // namespace

std::string write_chart(const std::string& out_dir, const Results& r) {
  int status = 0;
  const std::string terminals = capture("gnuplot -e 'set terminal'", status);
  if (status != 0) return "gnuplot not found or not working: no chart";
  const bool cairo = terminals.find("pngcairo") != std::string::npos;
  if (!cairo && terminals.find(" png ") == std::string::npos)
    return "gnuplot has no png terminal: no chart";

  // score = measured / goal (goal / measured for "at most" goals): > 1 means met.
  const std::string dat = out_dir + "/chart.dat";
  std::ofstream d(dat);
  d << "# index score color label value value_y goal goal_y\n";
  double lo = 0.5, hi = 2.0;
  int i = 0;
  for (const auto& q : r.ratios) {
    if (!q.def.goal) continue;
    const std::string label = quoted(q.def.workload + ": " + q.def.name);
    const std::string goal = quoted("goal " + goal_text(q));
    if (q.per_rep.empty() || q.value <= 0) {  // an engine failed: a grey marker at 1
      d << i++ << " 1 " << 0x999999 << ' ' << label << " \"no result\" 1.2 " << goal << " 1.45\n";
      continue;
    }
    // score = measured / goal (goal / measured for "at most" goals): > 1 means met.
    const double score = q.def.at_most ? *q.def.goal / q.value : q.value / *q.def.goal;
    lo = std::min(lo, score / 3);
    hi = std::max(hi, score * 3);
    char value[32];
    std::snprintf(value, sizeof value, "%.3gx", q.value);
    const bool up = score >= 1;
    d << i++ << ' ' << score << ' ' << (q.met() ? 0x2ca02c : 0xd62728) << ' ' << label << ' '
      << quoted(value) << ' ' << (up ? score * 1.2 : score / 1.2) << ' ' << goal << ' '
      << (up ? score * 1.45 : score / 1.45) << '\n';
  }
  d.close();
  if (i == 0) return "no ratio with a goal was measured: no chart";

  std::string respawn;
  for (const auto& row : r.rows) {
    if (row.workload == "respawn" && !row.samples.empty())
      respawn = "worker death -> replacement running a task: " +
                std::to_string(static_cast<long>(std::lround(row.median))) + " us (median)";
  }

  char title[512];
  std::snprintf(title, sizeof title,
                "mproc-bench: measured / goal, per repetition median (bar above 1 = goal met)\\n"
                "%zu CPUs (%s), %zu workers, %d reps%s, %s",
                r.machine.cpus, r.machine.model.c_str(), r.workers, r.reps,
                r.quick ? " (quick)" : "", r.machine.date.c_str());

  const std::string gp = out_dir + "/chart.gp";
  std::ofstream g(gp);
  g << "# Written by mproc-bench; re-plot with: gnuplot chart.gp (in this directory)\n";
  g << "set terminal " << (cairo ? "pngcairo" : "png") << " size 1400,800 noenhanced"
    << (cairo ? " font 'sans,10'" : "") << "\n";
  g << "set output " << quoted(out_dir + "/chart.png") << "\n";
  g << "set title \"" << title << "\"\n";
  g << "set logscale y\n";
  g << "set yrange [" << lo << ":" << hi << "]\n";
  g << "set xrange [-0.6:" << i - 0.4 << "]\n";
  g << "set ylabel 'measured / goal  (goal / measured for <= goals), log scale'\n";
  g << "set xtics rotate by -25 left nomirror\n";
  g << "set grid ytics mytics\n";
  g << "set mytics 10\n";
  g << "set ytics ('0.01x' 0.01, '0.02x' 0.02, '0.05x' 0.05, '0.1x' 0.1, '0.2x' 0.2, "
       "'0.5x' 0.5, '1x' 1, '2x' 2, '5x' 5, '10x' 10, '20x' 20, '50x' 50, '100x' 100)\n";
  g << "set bmargin 9\n";
  g << "set rmargin 18\n";
  g << "set style fill solid 0.85 border -1\n";
  if (!respawn.empty()) g << "set label 1 " << quoted(respawn) << " at graph 0.01, graph 0.96\n";
  g << "plot " << quoted(dat)
    << " using 1:2:($1-0.35):($1+0.35):(1):2:3:xtic(4) with boxxyerror lc rgb variable notitle, "
       "\\\n"
    << "     '' using 1:6:5 with labels font ',10' notitle, \\\n"
    << "     '' using 1:8:7 with labels font ',8' tc rgb '#555555' notitle, \\\n"
    << "     1 with lines dt 2 lw 2 lc rgb 'black' title 'goal'\n";
  g.close();

  const std::string out = capture("gnuplot " + quoted(gp), status);
  if (status != 0 || (WIFEXITED(status) && WEXITSTATUS(status) != 0))
    return "gnuplot failed: " + out;
  return {};
}

}  // namespace bench
