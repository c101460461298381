// mproc/errors.hpp — every error mproc throws.
//
// All derive from mproc::Error, itself a std::runtime_error, so one `catch (const mproc::Error&)`
// sees everything the library raises on its own account. Exceptions thrown by a task are not
// wrapped: a standard exception comes back as the same standard type (see RemoteError).
//
// Thread safety: exception objects are immutable after construction; safe to share.
#pragma once

#include <sys/types.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace mproc {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A task threw something that is not a standard exception type mproc can rebuild
// (a user-defined exception class, or a non-exception value such as `throw 42`).
class RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string message, std::string traceback = {})
      : Error(type_name + ": " + message),
        type_name_(std::move(type_name)),
        message_(std::move(message)),
        traceback_(std::move(traceback)) {}
  // Demangled dynamic type of what the task threw, e.g. "my::ParseError" or "int".
  const std::string& type_name() const noexcept { return type_name_; }
  // The task exception's what(), or a description for non-std::exception values.
  const std::string& message() const noexcept { return message_; }
  // The worker's stack where the task threw, innermost frame first, one frame a line
  // ("#0 ns::fn(int) at file.cpp:12"); empty when none was captured. Not part of what().
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string type_name_;
  std::string message_;
  std::string traceback_;
};

// The worker's stack where a task threw `e`, for an exception a pool rethrew in the caller as
// its own standard (or mproc) type — `catch (const std::out_of_range& e)` then
// `remote_traceback(e)` — and for a RemoteError (its traceback()). Innermost frame first, one
// frame a line, function names, and file:line where the binary has debug info; a stripped binary
// gives the names of shared-library functions and module+offset for its own frames.
// Empty for an exception that did not come from a pool task, or whose stack was not captured.
// Each such exception object keeps its traceback in a registry until the object is destroyed
// (when the last std::exception_ptr or AsyncResult holding it goes). Thread safety: callable
// from any thread; the registry is locked. Throws std::bad_alloc only (copying the text).
std::string remote_traceback(const std::exception& e);

// The worker running the task died (signal, exit() inside the task, killed from outside).
class WorkerLostError : public Error {
 public:
  WorkerLostError(const std::string& what, pid_t pid, int exit_code, int signal)
      : Error(what), pid_(pid), exit_code_(exit_code), signal_(signal) {}
  pid_t pid() const noexcept { return pid_; }
  // The worker's exit status if it exited, else -1.
  int exit_code() const noexcept { return exit_code_; }
  // The signal that killed the worker, else 0.
  int signal() const noexcept { return signal_; }

 private:
  pid_t pid_;
  int exit_code_;
  int signal_;
};

// A wait with a deadline expired (AsyncResult::get(timeout), Queue::get(timeout), ...).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

// A task ran past its time limit (PoolOptions::task_timeout or a per-call timeout); its worker
// was stopped and replaced.
class TaskTimeoutError : public Error {
 public:
  using Error::Error;
};

// A task stopped itself because it ran past its soft time limit (PoolOptions::soft_timeout or
// a per-call mproc::with_soft_timeout): once mproc::this_task::stop_requested() turned true it
// threw this (mproc::this_task::throw_if_stop_requested() does), and get() rethrows it. Its
// worker was not stopped and runs the next task. A task that did not stop by the hard limit
// fails with TaskTimeoutError instead. (Celery's SoftTimeLimitExceeded; not a TaskTimeoutError.)
class SoftTimeLimitExceeded : public Error {
 public:
  using Error::Error;
};

// AsyncResult::cancel() was called before the task finished.
class CancelledError : public Error {
 public:
  using Error::Error;
};

// Submitting to a pool that is closed, terminated or broken.
class PoolStateError : public Error {
 public:
  using Error::Error;
};

// A value could not be encoded or decoded: a corrupt or oversized frame, a frame naming an
// unknown callable, or a cereal failure while (de)serializing a task's arguments or result.
class SerializationError : public Error {
 public:
  using Error::Error;
};

// The far end of a pipe or connection is closed and nothing is left to read.
class EOFError : public Error {
 public:
  using Error::Error;
};

// A start method cannot be used as asked: an unknown name, or "forkserver" / "spawn" in a
// program whose main() does not begin with mproc::init(argc, argv).
class StartMethodError : public Error {
 public:
  using Error::Error;
};

// Misuse of a Process: start() twice, close() while it runs, a call after close(), a daemon
// starting a child, a start that cannot exec (Python's AssertionError / ValueError there).
class ProcessError : public Error {
 public:
  using Error::Error;
};

// Queue::get found nothing before its deadline (Python's queue.Empty).
class Empty : public Error {
 public:
  using Error::Error;
};

// Queue::put on a bounded queue found no room before its deadline (Python's queue.Full).
class Full : public Error {
 public:
  using Error::Error;
};

// Queue::put after Queue::shutdown(), or Queue::get once a shut-down queue is empty (Python
// 3.13's queue.ShutDown).
class ShutDown : public Error {
 public:
  using Error::Error;
};

// A Connection or Queue used after close(), an empty (default-constructed) handle, or a
// simplex Pipe end used in the direction it does not have (Python's OSError / ValueError).
class ClosedError : public Error {
 public:
  using Error::Error;
};

// Connection::send after every copy of the far end was closed (Python's BrokenPipeError).
class BrokenPipeError : public Error {
 public:
  using Error::Error;
};

// A synchronization primitive used against its rules: releasing a Lock or RLock the calling
// thread does not hold, a blocking acquire of a Lock the calling thread already holds,
// releasing a BoundedSemaphore above its initial value, waiting on or notifying a Condition
// without holding its lock, get_lock() on a Value or Array made without one, using an empty
// handle. (Python raises RuntimeError, ValueError or AssertionError there.)
class LockError : public Error {
 public:
  using Error::Error;
};

// A Barrier was aborted, reset while this party waited, timed out, or its action threw
// (Python's threading.BrokenBarrierError).
class BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

// A Manager's server cannot be reached: it was never started, was shut down, died, or the
// connection to it broke in the middle of a call (Python raises EOFError, BrokenPipeError or
// ConnectionRefusedError there). Calls on its proxies raise this instead of hanging.
class ManagerError : public Error {
 public:
  using Error::Error;
};

// The authentication handshake with a Manager failed: wrong authkey on either side, or a peer
// that does not speak the protocol (Python's multiprocessing.AuthenticationError).
class AuthenticationError : public Error {
 public:
  using Error::Error;
};

// A named shared-memory block (SharedMemory, ShareableList, SharedMemoryManager) cannot be
// created, attached, mapped or unlinked as asked: code() is the errno that says why — ENOENT (no
// block of that name: never created, or unlinked; Python's FileNotFoundError), EEXIST (create
// with a name in use; FileExistsError), EINVAL (a bad name or size, an attach asking for more
// bytes than the block has, a block that is not what was expected; ValueError), EACCES, ENOSPC
// (/dev/shm full), ...
class SharedMemoryError : public Error {
 public:
  SharedMemoryError(const std::string& what, int code) : Error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace mproc
