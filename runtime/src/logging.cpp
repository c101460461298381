#include "mproc/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <vector>

#include "mproc/process_info.hpp"

namespace mproc {
namespace {

// %N: the current process's name ("MainProcess", "ForkPoolWorker-1").
class ProcessNameFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string& n = current_process().name();
    dest.append(n.data(), n.data() + n.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ProcessNameFlag>();
  }
};

// stderr through write(2): one line is one write, so lines from several processes do not
// interleave, and the mutex is the sink's own (spdlog's console sinks share one global mutex,
// which a fork can leave locked forever in the child).
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      const ssize_t n = ::write(2, p, left);
      if (n <= 0) return;  // logging never throws
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  void flush_() override {}
};

std::unique_ptr<spdlog::formatter> make_formatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<ProcessNameFlag>('N').set_pattern("[%H:%M:%S.%e] [%l] [%N %P] %v");
  return formatter;
}

std::shared_ptr<spdlog::logger> make_logger() {
  auto sink = std::make_shared<StderrSink>();
  auto logger = std::make_shared<spdlog::logger>("mproc", sink);
  logger->set_formatter(make_formatter());
  logger->set_level(spdlog::level::off);
  logger->flush_on(spdlog::level::warn);
  return logger;
}

}  // namespace

std::shared_ptr<spdlog::logger> get_logger() {
  static const std::shared_ptr<spdlog::logger>* logger =
      new std::shared_ptr<spdlog::logger>(make_logger());
  return *logger;
}

std::shared_ptr<spdlog::logger> log_to_stderr(spdlog::level::level_enum level) {
  auto logger = get_logger();
  logger->set_level(level);
  return logger;
}

namespace detail {
void reset_logging_after_fork() noexcept {
  try {
    auto logger = get_logger();
    // Another thread of the parent may have held a sink's mutex at the fork: that copy stays
    // locked forever here. Replace the sinks, and never destroy the old ones.
    static auto* retired = new std::vector<spdlog::sink_ptr>;
    retired->insert(retired->end(), logger->sinks().begin(), logger->sinks().end());
    logger->sinks().clear();
    logger->sinks().push_back(std::make_shared<StderrSink>());
    logger->set_formatter(make_formatter());
  } catch (...) {
    // Logging never throws; a worker without a log is still a worker.
  }
}
}  // namespace detail

}  // namespace mproc
