// mproc/logging.hpp — Python's multiprocessing.log_to_stderr() and get_logger(), on spdlog.
//
// Every line carries the process name and pid: "[12:00:01.234] [debug] [ForkPoolWorker-2 4711] ..."
// mproc logs worker start, exit and replacement at debug level and a worker's unexpected death at
// warning. The logger is silent (level off) until log_to_stderr() is called, as in Python.
// Logging never throws: spdlog's error handler swallows sink failures.
//
// Thread safety: the logger is thread-safe (spdlog's _mt sink). Children forked after
// log_to_stderr() inherit its level and sink.
#pragma once

#include <memory>

#include <spdlog/spdlog.h>

namespace mproc {

// Python: multiprocessing.get_logger(). Never null.
std::shared_ptr<spdlog::logger> get_logger();

// Python: multiprocessing.log_to_stderr(level). Sends mproc's log to stderr at `level` and above.
std::shared_ptr<spdlog::logger> log_to_stderr(
    spdlog::level::level_enum level = spdlog::level::info);

namespace detail {
// In a child right after fork: gives the logger fresh sinks, so that a sink mutex another
// thread of the parent held at the fork cannot deadlock the child's first log line.
void reset_logging_after_fork() noexcept;
}  // namespace detail

}  // namespace mproc
