// An Event waited on with and without a timeout (seed 004 §9 "进程间--Event对象").
//
// Python:  e = multiprocessing.Event()
//          w1 = Process(name="block", target=wait_for_event, args=(e,)); w1.start()
//          w2 = Process(name="nonblock", target=wait_for_event_timeout, args=(e, 2)); w2.start()
//          print("main: waiting before calling Event.set()"); time.sleep(3); e.set()
//          print("main:event is set")
//          def wait_for_event(e): e.wait(); print("wait_for_event: e.is_set() ->", e.is_set())
//          def wait_for_event_timeout(e, t): e.wait(t); print(..., e.is_set())
//
// The seed relies on timing (a 2 s timeout against a 3 s sleep). Here the main process waits
// for the timed waiter to finish before it sets the event, so the output is defined: the timed
// wait returns false and sees the event unset; the blocking wait returns once it is set.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>

void wait_for_event(mproc::Event e) {
  std::printf("wait_for_event: starting\n");
  e.wait();
  std::printf("wait_for_event: e.is_set() -> %s\n", e.is_set() ? "True" : "False");
}

void wait_for_event_timeout(mproc::Event e, std::chrono::milliseconds t) {
  std::printf("wait_for_event_timeout: starting\n");
  const bool set = e.wait(t);
  std::printf("wait_for_event_timeout: e.is_set() -> %s (wait returned %s)\n",
              e.is_set() ? "True" : "False", set ? "true" : "false");
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Event e;
  mproc::Process w1(wait_for_event, e);
  w1.name("block");
  w1.start();
  mproc::Process w2(wait_for_event_timeout, e, std::chrono::milliseconds(100));
  w2.name("nonblock");
  w2.start();
  std::printf("main: waiting before calling Event.set()\n");
  w2.join();  // the seed sleeps longer than w2's timeout; joining w2 makes it certain
  e.set();
  std::printf("main: event is set\n");
  w1.join();
  return w1.exitcode() == 0 && w2.exitcode() == 0 ? 0 : 1;
}
