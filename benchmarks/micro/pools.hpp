// The pools the micro-benchmarks share, created in main after mproc::init and destroyed before
// it returns (a pool must not outlive main: its destructor joins processes and threads).
#pragma once

#include <mproc/pool.hpp>
#include <mproc/thread_pool.hpp>

namespace micro {

mproc::Pool& pool1();               // 1 worker process
mproc::Pool& pool2();               // 2 worker processes
mproc::ThreadPool& thread_pool1();  // 1 thread

}  // namespace micro
