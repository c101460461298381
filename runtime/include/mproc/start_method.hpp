// mproc/start_method.hpp — how worker processes are started: Python's set_start_method().
//
//   int main(int argc, char** argv) {
//     mproc::init(argc, argv);                 // first: spawned workers enter their loop here
//     mproc::set_start_method(mproc::StartMethod::kSpawn);
//     mproc::Pool pool(4);                     // workers are fresh execs of this program
//   }
//
// kFork        Workers are copies of the program as it was when the pool was made. Each pool
//              forks one single-threaded zygote from its own I/O thread and every worker from
//              that zygote, so no worker inherits a lock held by another thread of the pool.
//              The default: the fastest to start, and it needs no mproc::init.
// kForkserver  Workers are copies of the program as it was when mproc::init ran — at the top
//              of main, single threaded — and inherit none of its later state (globals set
//              after init, threads, locks). Python 3.14's Linux default. Needs mproc::init.
// kSpawn       Each worker is a fresh exec of this executable (/proc/self/exe) that enters the
//              worker loop inside mproc::init; it inherits only its socket and what is sent.
//              Slowest to start (one exec per worker); nothing is shared by accident.
//
// Callables are named, not addressed (see Pool), so the same task runs under all three even
// though ASLR loads each exec'd worker at a different address.
//
// The default is kFork unless the environment variable MPROC_START_METHOD names another
// ("fork", "forkserver", "spawn"), read once, or set_start_method() was called.
//
// Thread safety: all functions may be called from any thread; a pool reads the method once,
// when it is constructed.
#pragma once

#include <string_view>

namespace mproc {

enum class StartMethod { kFork, kForkserver, kSpawn };

// "fork", "forkserver", "spawn".
std::string_view to_string(StartMethod m) noexcept;
// Throws StartMethodError for any other name.
StartMethod parse_start_method(std::string_view name);

// Python's multiprocessing.set_start_method(). Unlike Python, calling it again is allowed: each
// pool uses the method in force when it is constructed. Throws StartMethodError when the method
// needs mproc::init and init has not run.
void set_start_method(StartMethod m);
void set_start_method(std::string_view name);
StartMethod get_start_method() noexcept;

// The names Python's get_all_start_methods() would give on Linux, default first.
constexpr std::string_view all_start_methods[] = {"fork", "forkserver", "spawn"};

namespace detail {
// Throws StartMethodError if `m` cannot be used in this program (see above).
void require_start_method(StartMethod m);
}  // namespace detail

}  // namespace mproc
