// mproc-micro's main: Google Benchmark's, with mproc::init first and the shared pools.
#include <benchmark/benchmark.h>

#include <mproc/mproc.hpp>

#include <memory>

#include "pools.hpp"

namespace micro {
namespace {
std::unique_ptr<mproc::Pool> g_pool1, g_pool2;
std::unique_ptr<mproc::ThreadPool> g_thread_pool1;
}  // namespace

mproc::Pool& pool1() {
  if (!g_pool1) g_pool1 = std::make_unique<mproc::Pool>(1);
  return *g_pool1;
}
mproc::Pool& pool2() {
  if (!g_pool2) g_pool2 = std::make_unique<mproc::Pool>(2);
  return *g_pool2;
}
mproc::ThreadPool& thread_pool1() {
  if (!g_thread_pool1) g_thread_pool1 = std::make_unique<mproc::ThreadPool>(1);
  return *g_thread_pool1;
}

}  // namespace micro

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  micro::g_pool1.reset();
  micro::g_pool2.reset();
  micro::g_thread_pool1.reset();
  return 0;
}
