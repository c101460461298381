// mproc/mproc.hpp — the whole public API in one include.
#pragma once

#include "mproc/errors.hpp"
#include "mproc/logging.hpp"
#include "mproc/pool.hpp"
#include "mproc/process_info.hpp"
#include "mproc/progress.hpp"
#include "mproc/thread_pool.hpp"
