// The Manager workloads: mproc::Manager's proxies against Python's multiprocessing.Manager and
// the raw socketpair round trip.
//
// Every measurement starts its own Manager (server process) and warms its connection up; only
// the calls are timed (manager-clients also counts starting and joining its client processes,
// as Python's side does). mp_bench.py does the same for Python.
#include "manager_workloads.hpp"
#include "workload_support.hpp"

#include <mproc/mproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "floor.hpp"

// ---- what runs in the server and in the clients (plain functions: mproc names them) ----------

int bench_mgr_add_one(int x) {
  return x + 1;
}

// One client of manager-clients: `n` atomic increments of key 0.
void bench_mgr_client(mproc::DictProxy<int, int> d, int n) {
  for (int i = 0; i < n; ++i) d.update_with(0, bench_mgr_add_one);
}

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using Result = std::optional<double>;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Result fail(std::string& error, std::string what) {
  error = std::move(what);
  return std::nullopt;
}

mproc::ManagerOptions options_at(const std::string& address) {
  mproc::ManagerOptions o;
  o.address = address;
  return o;
}

// ---- manager-call: d.set(k, i) then d.get(k), sequentially (us per call) ----------------------

Result manager_call_us(std::size_t n, const std::string& address, std::string& error) {
  mproc::Manager manager(options_at(address));
  auto d = manager.dict<int, int>();
  long sum = 0;
  for (int i = 0; i < 200; ++i) {  // warm-up: connection made, server thread and pages hot
    d.set(1, i);
    sum += d.get(1);
  }
  sum = 0;
  const std::size_t pairs = n / 2;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < pairs; ++i) {
    d.set(1, static_cast<int>(i));
    sum += d.get(1);
  }
  const double s = seconds_since(t0);
  if (sum != static_cast<long>(pairs * (pairs - 1) / 2)) return fail(error, "wrong results");
  return s * 1e6 / static_cast<double>(2 * pairs);
}

// ---- manager-clients: update_with from `clients` processes (calls/s, start to join) -----------

Result manager_clients_rate(std::size_t total, std::size_t clients, std::chrono::seconds limit,
                            std::string& error) {
  mproc::Manager manager;
  auto d = manager.dict<int, int>();
  d.set(0, 0);
  const int per = static_cast<int>(total / clients);
  std::vector<std::unique_ptr<mproc::Process>> ps;
  for (std::size_t i = 0; i < clients; ++i)
    ps.push_back(std::make_unique<mproc::Process>(bench_mgr_client, d, per));
  const auto t0 = Clock::now();
  for (auto& p : ps) p->start();
  bool all_joined = true;
  for (auto& p : ps)
    all_joined =
        p->join(limit - std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - t0)) &&
        all_joined;
  const double s = seconds_since(t0);
  if (!all_joined) {
    for (auto& p : ps) p->kill();
    for (auto& p : ps) p->join(std::chrono::seconds(5));
    return fail(error, "clients did not finish within " + std::to_string(limit.count()) + " s");
  }
  for (auto& p : ps) {
    if (p->exitcode() != 0)
      return fail(error, "a client exited with " + std::to_string(p->exitcode().value_or(-1)));
  }
  const int got = d.get(0);
  const long want = static_cast<long>(per) * static_cast<long>(clients);
  if (got != want) {
    return fail(error, "final counter " + std::to_string(got) + ", expected " +
                           std::to_string(want) + " (lost updates)");
  }
  return static_cast<double>(want) / s;
}

// ---- assembling ---------------------------------------------------------------------------------

}  // namespace

std::vector<std::string> append_manager_workload_names(std::vector<std::string> names) {
  names.insert(names.end(), {"manager-call", "manager-clients"});
  return names;
}

void add_manager_workloads(const Config& cfg, const std::vector<std::string>& only,
                           std::vector<Workload>& out, std::vector<std::string>&) {
  const bool q = cfg.quick;
  const std::chrono::seconds limit(q ? 20 : 60);  // per measurement, for the client processes
  auto pick = [q](Sizes full, Sizes quick) { return q ? quick : full; };
  auto wanted = [&](const std::string& name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };

  if (wanted("manager-call")) {
    const Sizes n = pick({20'000, 10'000}, {4'000, 2'000});
    Workload w{"manager-call",
               "Manager dict proxy: d.set(k, v) then d.get(k) alternately, one round trip each",
               {},
               {}};
    const std::string u = "us/call";
    w.engines.push_back(
        engine("mproc", u, n.cpp, [n](std::string& e) { return manager_call_us(n.cpp, "", e); }));
    w.engines.push_back(engine("mproc-tcp", u, n.cpp, [n](std::string& e) {
      return manager_call_us(n.cpp, "tcp:127.0.0.1:0", e);
    }));
    w.engines.push_back(engine("socketpair", "us/round-trip", n.cpp,
                               [n](std::string&) -> Result { return socketpair_rtt_us(n.cpp); }));
    add_python(w, cfg, "python", "manager_call", u, n.python);
    w.ratios = {
        ratio("manager-call", "python / mproc (x faster)", "python", "mproc", 2.0),
        ratio("manager-call", "mproc / socketpair RTT", "mproc", "socketpair"),
        ratio("manager-call", "mproc-tcp / mproc", "mproc-tcp", "mproc"),
    };
    out.push_back(std::move(w));
  }

  if (wanted("manager-clients")) {
    const Sizes n = pick({40'000, 8'000}, {8'000, 2'000});
    Workload w{"manager-clients",
               "d.update_with(k, add_one) from 1 / 8 client processes, start to join (Python: "
               "`with lock: d[k] += 1` under a Manager Lock, 4 round trips per increment)",
               {},
               {}};
    const std::string u = "calls/s";
    for (std::size_t clients : {std::size_t{1}, std::size_t{8}}) {
      w.engines.push_back(
          engine("mproc-" + std::to_string(clients), u, n.cpp, [n, clients, limit](std::string& e) {
            return manager_clients_rate(n.cpp, clients, limit, e);
          }));
    }
    for (std::size_t clients : {std::size_t{1}, std::size_t{8}}) {
      add_python(w, cfg, "python-" + std::to_string(clients),
                 "manager_clients_" + std::to_string(clients), u, n.python);
    }
    w.ratios = {
        ratio("manager-clients", "mproc-8 / mproc-1", "mproc-8", "mproc-1"),
        // Python's increment is 4 round trips (acquire, get, set, release), each ~2x mproc's.
        ratio("manager-clients", "mproc-8 / python-8 (x faster)", "mproc-8", "python-8", 5.0),
    };
    out.push_back(std::move(w));
  }
}

}  // namespace bench
