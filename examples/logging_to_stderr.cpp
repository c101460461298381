// log_to_stderr() and get_logger() (seed 004 §6 "日志").
//
// Python:  multiprocessing.log_to_stderr(logging.DEBUG)
//          p = multiprocessing.Process(target=worker); p.start(); p.join()
//          ...
//          multiprocessing.log_to_stderr(); logger = multiprocessing.get_logger()
//          logger.setLevel(logging.INFO)
//          def worker(): print("Doing some work"); sys.stdout.flush()
//
// The logger is spdlog's: every line names the process and its pid. A child forked after
// log_to_stderr() logs to the same stderr.
#include <mproc/mproc.hpp>

#include <cstdio>

void worker() {
  std::printf("Doing some work\n");
  std::fflush(stdout);
  mproc::get_logger()->info("a log line from the worker");
  mproc::get_logger()->debug("a debug line from the worker");
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::log_to_stderr(spdlog::level::debug);
  mproc::Process p(worker);
  p.start();
  p.join();

  mproc::log_to_stderr();
  auto logger = mproc::get_logger();
  logger->set_level(spdlog::level::info);
  logger->debug("not shown: below the level");
  mproc::Process q(worker);
  q.start();
  q.join();
  logger->info("both workers done");
  return p.exitcode() == 0 && q.exitcode() == 0 ? 0 : 1;
}
