#include "mproc/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

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

std::shared_ptr<spdlog::logger> make_logger() {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("mproc", sink);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<ProcessNameFlag>('N').set_pattern("[%H:%M:%S.%e] [%l] [%N %P] %v");
  logger->set_formatter(std::move(formatter));
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

}  // namespace mproc
