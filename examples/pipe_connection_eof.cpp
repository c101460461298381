// Both ends of a duplex Pipe in one process: send, recv, poll, close, and EOFError
// (seed 003 "Connection Objects").
//
// Python:  a, b = mp.Pipe()
//          for i in range(10):
//              a.send(i); b.send(i*i); time.sleep(0.1); print(b.recv(), b.poll(0.5))
//          b.close()
//          while True:
//              try: print(a.recv())
//              except EOFError: print('end'); break
//
// b receives what a sent (i) and nothing more, so poll times out: False. After b is closed, a
// still reads the ten squares b sent, then gets EOFError. The output is fully defined.
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  auto [a, b] = mproc::Pipe<int>();
  for (int i = 0; i < 10; ++i) {
    a.send(i);
    b.send(i * i);
    const int got = b.recv();
    std::printf("%d %s\n", got, b.poll(std::chrono::milliseconds(20)) ? "True" : "False");
  }
  std::printf("fds: %d %d\n", b.fileno(), a.fileno());
  b.close();
  int squares = 0;
  while (true) {
    try {
      std::printf("%d\n", a.recv());
      ++squares;
    } catch (const mproc::EOFError&) {
      std::printf("end\n");
      break;
    }
  }
  return squares == 10 ? 0 : 1;
}
