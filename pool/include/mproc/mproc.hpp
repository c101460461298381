// mproc/mproc.hpp — the whole public API in one include.
#pragma once

#include "mproc/connection.hpp"
#include "mproc/context.hpp"
#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/manager.hpp"
#include "mproc/mpi.hpp"
#include "mproc/pool.hpp"
#include "mproc/process.hpp"
#include "mproc/process_info.hpp"
#include "mproc/progress.hpp"
#include "mproc/queue.hpp"
#include "mproc/shared_memory.hpp"
#include "mproc/start_method.hpp"
#include "mproc/synchronize.hpp"
#include "mproc/thread_pool.hpp"
