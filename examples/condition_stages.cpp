// Processes waiting on a Condition until a first stage is done (seed 004 §11
// "同步操作--Condition").
//
// Python:  def stage_1(cond):
//              with cond: print("%s done and ready for stage 2" % name); cond.notify_all()
//          def stage_2(cond):
//              with cond: cond.wait(); print("%s running" % name)
//          condition = multiprocessing.Condition()
//          s1 = Process(name="s1", target=stage_1, args=(condition,))
//          s2_clients = [Process(name="stage_2[%d]" % i, target=stage_2, args=(condition,)) for i
//          in range(1, 3)] for c in s2_clients: c.start(); time.sleep(1) s1.start(); s1.join(); for
//          c in s2_clients: c.join()
//
// The seed relies on sleep(1) for the stage-2 processes to be waiting before stage 1 notifies,
// and a bare wait() may also wake spuriously. A shared flag and wait_for(predicate) make it
// certain: stage 2 runs after stage 1, whatever the timing. Each line is flushed while the
// condition's lock is held, so "s1 done" is printed before any "running".
#include <mproc/mproc.hpp>

#include <cstdio>
#include <mutex>
#include <string>

void stage_1(mproc::Condition cond, mproc::RawValue<bool> done) {
  const std::string& name = mproc::current_process().name();
  std::printf("starting: %s\n", name.c_str());
  std::lock_guard guard(cond);  // with cond:
  std::printf("%s done and ready for stage 2\n", name.c_str());
  std::fflush(stdout);
  done.set(true);
  cond.notify_all();
}

void stage_2(mproc::Condition cond, mproc::RawValue<bool> done) {
  const std::string& name = mproc::current_process().name();
  std::printf("starting: %s\n", name.c_str());
  std::lock_guard guard(cond);
  cond.wait_for([&] { return done.get(); });
  std::printf("%s running\n", name.c_str());
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Condition condition;
  mproc::RawValue<bool> done(false);  // guarded by the condition's lock
  mproc::Process s1(stage_1, condition, done);
  s1.name("s1");
  mproc::Process c1(stage_2, condition, done);
  c1.name("stage_2[1]");
  mproc::Process c2(stage_2, condition, done);
  c2.name("stage_2[2]");
  c1.start();
  c2.start();
  s1.start();
  s1.join();
  c1.join();
  c2.join();
  return s1.exitcode() == 0 && c1.exitcode() == 0 && c2.exitcode() == 0 ? 0 : 1;
}
