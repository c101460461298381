// A writer process fills a Queue; after it ended, a reader drains it with non-blocking gets
// until Empty (seed 004 §8 "进程间的通信--队列").
//
// Python:  q = Queue()
//          p_write = Process(target=write, args=(q,)); p_read = Process(target=read, args=(q,))
//          p_write.start(); p_write.join(); p_read.start(); p_read.join()
//          def write(q): for value in [1,2,3,4,5]: q.put(value); print('---put %d to queue' %
//          value) def read(q):
//              while True:
//                  try: value = q.get(False); print('---get %d from queue' % value)
//                  except Empty: print('---队列为空---'); break
//
// (write and read are renamed: the POSIX functions of those names would make them ambiguous.)
// Everything is defined: the reader starts after the writer ended, and mproc's put() returns
// once the item is in the kernel (no feeder thread), so get(false) finds all five, in order.
#include <mproc/mproc.hpp>

#include <cstdio>

void write_values(mproc::Queue<int> q) {
  for (int value : {1, 2, 3, 4, 5}) {
    q.put(value);
    std::printf("---put %d to queue\n", value);
  }
}

void read_values(mproc::Queue<int> q) {
  while (true) {
    try {
      const int value = q.get(false);  // non-blocking: Empty at once when there is nothing
      std::printf("---get %d from queue\n", value);
    } catch (const mproc::Empty&) {
      std::printf("---queue is empty---\n");
      break;
    }
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Queue<int> q;
  mproc::Process p_write(write_values, q);
  mproc::Process p_read(read_values, q);
  p_write.start();
  p_write.join();
  p_read.start();
  p_read.join();
  return p_write.exitcode() == 0 && p_read.exitcode() == 0 && q.empty() ? 0 : 1;
}
