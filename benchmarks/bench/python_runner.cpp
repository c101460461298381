// The Python baseline runner: one python3 process per measurement (its pool is created and
// warmed up before the timed section; interpreter start-up is not measured).
#include "python_runner.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace bench {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::optional<std::string> find_on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    // (std::filesystem, not string +: GCC 12's -Wrestrict misfires on the latter at -O3)
    const std::string candidate =
        (std::filesystem::path(dir.empty() ? "." : dir) / program).string();
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::optional<double> PythonRunner::run(const std::string& workload, std::size_t n,
                                        std::string& error) const {
  std::ostringstream c;
  c << shell_quote(exe) << ' ' << shell_quote(script) << " --workload " << shell_quote(workload)
    << " --n " << n << " --workers " << workers << " 2>&1";
  return run_for_value(c.str(), "python " + workload, error);
}

std::optional<double> run_for_value(const std::string& cmd, const std::string& what,
                                    std::string& error) {
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    error = "cannot start " + what;
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  for (std::size_t got; (got = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, got);
  const int status = ::pclose(p);
  // The script prints one JSON object on its last line: {"workload": ..., "value": <number>, ...}
  const std::string key = "\"value\":";
  const auto at = out.rfind(key);
  if (status == 0 && at != std::string::npos) {
    const char* begin = out.c_str() + at + key.size();
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    if (end != begin) return v;
  }
  std::string tail = out.size() > 400 ? out.substr(out.size() - 400) : out;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  std::ostringstream why;
  why << what << " failed (";
  if (WIFEXITED(status)) {
    why << "exit " << WEXITSTATUS(status);
  } else {
    why << "status " << status;
  }
  why << "): " << tail;
  error = why.str();
  return std::nullopt;
}

}  // namespace bench
