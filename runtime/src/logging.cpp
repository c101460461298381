#include "mproc/logging.hpp"

#include <spdlog/details/fmt_helper.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <vector>

#include "logging_internal.hpp"
#include "mproc/process_info.hpp"

namespace mproc {
namespace {

// The process whose record a sink is writing, when it is not this one (a relayed record).
thread_local const detail::LogOrigin* t_origin = nullptr;

// %N: the name of the process that logged ("MainProcess", "ForkPoolWorker-1").
class ProcessNameFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (t_origin != nullptr) {
      dest.append(t_origin->name.data(), t_origin->name.data() + t_origin->name.size());
      return;
    }
    const std::string& n = current_process().name();
    dest.append(n.data(), n.data() + n.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ProcessNameFlag>();
  }
};

// %P: the pid of the process that logged (spdlog's own %P is always this process's).
class ProcessIdFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    spdlog::details::fmt_helper::append_int(t_origin != nullptr ? t_origin->pid : ::getpid(), dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ProcessIdFlag>();
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
  return log_formatter();
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

std::unique_ptr<spdlog::formatter> log_formatter(const std::string& pattern) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<ProcessNameFlag>('N').add_flag<ProcessIdFlag>('P').set_pattern(pattern);
  return formatter;
}

std::shared_ptr<spdlog::logger> log_to_stderr(spdlog::level::level_enum level) {
  auto logger = get_logger();
  logger->set_level(level);
  return logger;
}

namespace detail {

LogOriginScope::LogOriginScope(const LogOrigin& origin) noexcept : previous_(t_origin) {
  t_origin = &origin;
}
LogOriginScope::~LogOriginScope() {
  t_origin = previous_;
}

void install_child_sink(spdlog::sink_ptr sink) {
  auto logger = get_logger();
  // Another thread of the parent may have held a sink's mutex at the fork: that copy stays
  // locked forever here. Replace the sinks, and never destroy the old ones.
  static auto* retired = new std::vector<spdlog::sink_ptr>;
  retired->reserve(retired->size() + logger->sinks().size());
  sink->set_formatter(make_formatter());
  retired->insert(retired->end(), logger->sinks().begin(), logger->sinks().end());
  logger->sinks().clear();
  logger->sinks().push_back(std::move(sink));
}

void reset_logging_after_fork() noexcept {
  try {
    install_child_sink(std::make_shared<StderrSink>());
  } catch (...) {
    // Logging never throws; a worker without a log is still a worker.
  }
}
}  // namespace detail

}  // namespace mproc
