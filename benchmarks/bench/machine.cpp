// The machine a run happened on, for the report's header.
#include <mproc/process_info.hpp>

#include <ctime>
#include <fstream>
#include <string>

#include "results.hpp"

namespace bench {

Machine describe_machine() {
  Machine m;
  m.cpus = mproc::cpu_count();
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    m.model = line.substr(line.find_first_not_of(" \t", colon + 1));
    break;
  }
  if (m.model.empty()) m.model = "unknown";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  m.date = buf;
  return m;
}

}  // namespace bench
