// Producer and Consumer subclasses of Process sharing a Queue; the consumer stops when get()
// times out with Empty (seed 003, the Producer / Consumer example).
//
// Python:  class Producer(mp.Process):
//              def run(self):
//                  for i in range(5): time.sleep(0.5); print('put', i); self.queue.put(i)
//          class Consumer(mp.Process):
//              def run(self):
//                  while True:
//                      try: item = self.queue.get(timeout=2); print('get', item)
//                      except queue.Empty: print('队列空'); break
//          queue = mp.Queue(10); p1 = Consumer(queue); p2 = Producer(queue)
//          p1.start(); p2.start(); p1.join(); p2.join(); print('end')
//
// Times scaled down: a put every 20 ms, a get timeout of 500 ms. One producer: the consumer
// gets 0..4 in order, then Empty. (Subclasses with run() need the fork start method.)
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <thread>

class Producer : public mproc::Process {
 public:
  explicit Producer(mproc::Queue<int> queue) : queue_(std::move(queue)) {}
  void run() override {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::printf("put %d\n", i);
      queue_.put(i);
    }
  }

 private:
  mproc::Queue<int> queue_;
};

class Consumer : public mproc::Process {
 public:
  explicit Consumer(mproc::Queue<int> queue) : queue_(std::move(queue)) {}
  void run() override {
    int expected = 0;
    while (true) {
      try {
        const int item = queue_.get(std::chrono::milliseconds(500));
        std::printf("get %d\n", item);
        if (item != expected++) mproc::exit(1);
      } catch (const mproc::Empty&) {
        std::printf("queue empty\n");
        break;
      }
    }
    if (expected != 5) mproc::exit(1);
  }

 private:
  mproc::Queue<int> queue_;
};

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Queue<int> queue(10);
  Consumer p1(queue);
  Producer p2(queue);
  p1.start();
  p2.start();
  p1.join();
  p2.join();
  std::printf("end\n");
  return p1.exitcode() == 0 && p2.exitcode() == 0 ? 0 : 1;
}
