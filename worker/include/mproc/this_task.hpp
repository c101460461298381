// mproc/this_task.hpp — what a task running in a Pool's worker process may ask about itself:
// whether it has been asked to stop because its soft time limit passed.
//
//   int crunch(int n) {
//     for (int i = 0; i < n; ++i) {
//       mproc::this_task::throw_if_stop_requested();  // cleans up by unwinding
//       step(i);
//     }
//     return n;
//   }
//   mproc::PoolOptions o;
//   o.soft_timeout = 2s;                   // ask to stop after 2 s ...
//   o.task_timeout = 5s;                   // ... kill after 5 s
//   mproc::Pool pool(o);
//   pool.apply_async(crunch, n);           // get(): SoftTimeLimitExceeded if it stopped itself,
//                                          // TaskTimeoutError if it had to be killed
//   pool.apply_async(crunch, n, mproc::with_soft_timeout(1s));  // this call's own soft limit
//
// Python mapping: Celery's soft_time_limit, whose SoftTimeLimitExceeded is raised inside the
// task by a signal handler. mproc does not raise anything asynchronously: a C++ exception thrown
// from a signal handler into arbitrary code is undefined behaviour (it may unwind through
// malloc, a half-updated container or a held lock, and code compiled without
// -fasynchronous-unwind-tables cannot be unwound at every instruction). Instead the task is asked
// to stop and checks: stop_requested() turns true, and the task cleans up and throws
// SoftTimeLimitExceeded (throw_if_stop_requested() does both checks and throw) — or returns
// early, in which case its value is its result, as a Celery task that catches the exception. A
// task that never checks runs on until its hard limit (task_timeout or with_timeout) kills its
// worker: TaskTimeoutError, and the worker is replaced; with no hard limit it runs to its end.
// A task blocked in a system call (a sleep, a read, a lock) sees the request when it next
// checks: wait in slices.
//
// How the request arrives: when a task's soft limit passes, the pool's coordinator writes the
// task's id into its worker's slot of the memory the pool shares with its workers;
// stop_requested() compares that with the id of the task running (two relaxed atomic loads; no
// system call, no signal, nothing that can disturb the task's own signal handlers or interrupt
// its system calls). The answer is per task: the next task on the same worker starts with false.
//
// No std::stop_token parameter: a stop_token answers for a std::stop_source, whose
// request_stop() would have to run inside the worker — on a thread of ours in every worker, or
// in a check of ours between the task's own steps — to give what this flag already gives.
//
// Where it can be true: in a task of a process Pool (every start method), from any thread of
// its worker process; once true it stays true until the task ends. It is always false
// elsewhere: in the parent, in a ThreadPool task and on an mproc::mpi::Pool rank (neither
// delivers soft limits; their hard limits work as they did), in an initializer, in an
// mproc::Process the parent starts.
//
// Thread safety: both calls may be made from any thread. stop_requested() is noexcept and
// async-signal-safe; throw_if_stop_requested() throws SoftTimeLimitExceeded (errors.hpp).
#pragma once

namespace mproc::this_task {

// Whether this task has been asked to stop: its soft time limit has passed. (Out of line, so
// that this header exposes none of the worker's internals; a call and two relaxed loads.)
bool stop_requested() noexcept;

// Throws mproc::SoftTimeLimitExceeded when stop_requested(); does nothing otherwise.
void throw_if_stop_requested();

}  // namespace mproc::this_task
