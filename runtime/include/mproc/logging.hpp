// mproc/logging.hpp — Python's multiprocessing.log_to_stderr() and get_logger(), on spdlog.
//
// Every line carries the process name and pid: "[12:00:01.234] [debug] [ForkPoolWorker-2 4711] ..."
// mproc logs worker start, exit and replacement at debug level and a worker's unexpected death at
// warning. The logger is silent (level off) until log_to_stderr() or set_level() is called, as
// in Python. Logging never throws: spdlog's error handler swallows sink failures.
//
// Pool workers log through the parent (Python's QueueHandler and QueueListener, built in).
// In a worker of a Pool — under fork, forkserver and spawn alike — get_logger() has one sink
// that sends each record to the pool's parent, where it goes through the sinks the parent's
// get_logger() has then: a rotating file sink or a custom sink the parent added sees the
// workers' lines, mproc's own and the ones its tasks log with mproc::get_logger(). A relayed
// record keeps its level, text, time, thread id and source location; its logger name is the
// worker's name and pid ("ForkPoolWorker-2 4711", which a pattern's %n prints), and the %N and
// %P flags of mproc's pattern (log_formatter()) print the worker, not the parent.
//
//   auto log = mproc::get_logger();
//   auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>("app.log", 1 << 20, 3);
//   file->set_formatter(mproc::log_formatter());  // or keep spdlog's pattern: %n is the worker
//   log->sinks().push_back(file);
//   log->set_level(spdlog::level::info);          // before the pool is made (see Levels)
//   mproc::Pool pool(4);                          // tasks' get_logger()->info(...) reach app.log
//
// Levels. A worker's logger starts at the level the parent's had when the pool was made; a
// record below it is never made, so a task that does not log, or logs below the level, pays one
// level check per call and nothing else. The parent then filters what arrives as it filters its
// own records: by its logger's level at that moment and by each sink's level.
//
// When a record arrives. Asynchronously, on a thread of the pool: a task's result may be seen
// before the lines the task logged. By the time the pool's join() or terminate() returns (the
// destructor calls one of them), every record its workers sent has gone through the sinks —
// also the lines of a worker that logged and then died or _exit()ed at once.
//
// What is lost, and when:
//   - Records of a worker that the parent does not read: when the channel is full (~1 MiB of
//     records in flight across a pool, less where net.core.wmem_max is lower) a record waits up
//     to 1 s for room; if none comes it is dropped, and the records after it are dropped at
//     once, without waiting, until one fits again. So a parent stopped in a debugger or stuck in
//     a slow sink delays a logging task by about a second each time the channel fills up and
//     stays full, and never blocks it for good. The count
//     is not lost: the next record that gets through (or the worker's exit) brings it, and the
//     parent logs a warning "N log records were dropped" under the worker's name.
//   - What a worker sends after its pool's join() or terminate() has returned (e.g. a grandchild
//     process still holding the channel), and the lines of a worker killed by terminate() that
//     had not been sent yet.
//   - A text longer than 32 KiB is cut there, marked " [... cut]".
// Processes started with mproc::Process log to their own stderr (from their parent's level at
// the fork, or at the spawn) — they are not relayed.
//
// Thread safety: the logger is thread-safe (spdlog's _mt sinks); a worker's relaying sink may be
// used from any thread of the worker. Relayed records reach the parent's sinks on a thread of
// the pool, so a sink the parent uses must be thread-safe (an _mt sink), and, as spdlog says,
// the sinks() vector may not be changed while records are being logged — in the parent that
// includes while a pool's workers may be logging. A Process child forked after log_to_stderr()
// inherits its level and writes to the same stderr.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace mproc {

// Python: multiprocessing.get_logger(). Never null.
std::shared_ptr<spdlog::logger> get_logger();

// Python: multiprocessing.log_to_stderr(level). Sends mproc's log to stderr at `level` and above.
std::shared_ptr<spdlog::logger> log_to_stderr(
    spdlog::level::level_enum level = spdlog::level::info);

// A formatter for a sink of your own, with spdlog's pattern flags plus %N, the name of the
// process that logged ("MainProcess", "SpawnPoolWorker-3"), and %P, its pid — the worker's for
// a relayed record, where spdlog's own %P would print the parent's. The default pattern is
// mproc's own. Throws what spdlog::pattern_formatter throws (a bad pattern).
std::unique_ptr<spdlog::formatter> log_formatter(
    const std::string& pattern = "[%H:%M:%S.%e] [%l] [%N %P] %v");

namespace detail {
// In a child right after fork: gives the logger fresh sinks, so that a sink mutex another
// thread of the parent held at the fork cannot deadlock the child's first log line.
void reset_logging_after_fork() noexcept;
}  // namespace detail

}  // namespace mproc
