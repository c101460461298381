// PoolStats and WorkerExitCause as text (pool_stats.hpp, worker_events.hpp).
#include "mproc/pool/pool_stats.hpp"

#include <cstdio>
#include <ostream>
#include <string>

#include "mproc/pool/worker_events.hpp"

namespace mproc {

const char* to_string(WorkerExitCause cause) noexcept {
  switch (cause) {
    case WorkerExitCause::kClose:
      return "close";
    case WorkerExitCause::kTerminate:
      return "terminate";
    case WorkerExitCause::kMaxTasks:
      return "maxtasksperchild";
    case WorkerExitCause::kMemoryCap:
      return "memory cap";
    case WorkerExitCause::kTimeout:
      return "timeout";
    case WorkerExitCause::kCancel:
      return "cancel";
    case WorkerExitCause::kCrash:
      return "crash";
    case WorkerExitCause::kInitializer:
      return "initializer";
    case WorkerExitCause::kProtocolFault:
      return "protocol fault";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, WorkerExitCause cause) {
  return os << to_string(cause);
}

std::uint64_t PoolStats::Workers::exited() const noexcept {
  std::uint64_t n = 0;
  for (std::uint64_t c : exited_by_cause) n += c;
  return n;
}

std::uint64_t PoolStats::Workers::replaced() const noexcept {
  return exited() - exited(WorkerExitCause::kClose) - exited(WorkerExitCause::kTerminate);
}

namespace {

// Three significant digits and a unit: "850 ns", "12.5 us", "1.21 ms", "2.04 s".
std::string duration_text(std::chrono::nanoseconds d) {
  const double ns = static_cast<double>(d.count());
  char buf[32];
  if (ns < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(buf, sizeof buf, "%.3g us", ns / 1e3);
  } else if (ns < 1e9) {
    std::snprintf(buf, sizeof buf, "%.3g ms", ns / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g s", ns / 1e9);
  }
  return buf;
}

std::string bytes_text(std::size_t b) {
  if (b == 0) return "-";
  char buf[32];
  const double x = static_cast<double>(b);
  if (b < (1u << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", x / 1024);
  } else if (b < (std::size_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", x / (1024 * 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", x / (1024.0 * 1024 * 1024));
  }
  return buf;
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const PoolStats& s) {
  const auto& t = s.tasks;
  const auto& f = t.failed;
  os << "pool: " << s.processes << " processes\n";
  os << "tasks: " << t.queued << " queued, " << t.running << " running, " << t.completed
     << " completed, " << f.total() << " failed (exception " << f.exception << ", worker lost "
     << f.worker_lost << ", timeout " << f.timeout << ", cancelled " << f.cancelled << ", aborted "
     << f.aborted << "); " << t.direct << " taken directly by an idle worker\n";
  const auto& w = s.worker_counts;
  os << "workers: " << w.started << " started, " << w.exited() << " exited";
  if (w.exited() != 0) {
    os << " (";
    bool first = true;
    for (std::size_t i = 0; i < kWorkerExitCauses; ++i) {
      if (w.exited_by_cause[i] == 0) continue;
      os << (first ? "" : ", ") << to_string(static_cast<WorkerExitCause>(i)) << ' '
         << w.exited_by_cause[i];
      first = false;
    }
    os << ")";
  }
  os << "\n";
  const auto& r = s.run_time;
  os << "task run time (last " << r.samples << " tasks): ";
  if (r.samples == 0) {
    os << "none yet\n";
  } else {
    os << "p50 " << duration_text(r.p50) << ", p90 " << duration_text(r.p90) << ", p99 "
       << duration_text(r.p99) << "\n";
  }
  if (s.workers.empty()) return os;
  char line[160];
  std::snprintf(line, sizeof line, "  %-22s %-8s %-9s %-14s %s\n", "worker", "pid", "tasks",
                "current task", "rss");
  os << line;
  for (const auto& x : s.workers) {
    const std::string age = x.current_task_age ? duration_text(*x.current_task_age) : "idle";
    std::snprintf(line, sizeof line, "  %-22s %-8d %-9llu %-14s %s\n", x.name.c_str(),
                  static_cast<int>(x.pid), static_cast<unsigned long long>(x.tasks_done),
                  age.c_str(), bytes_text(x.rss_bytes).c_str());
    os << line;
  }
  return os;
}

}  // namespace mproc
