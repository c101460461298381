// A producer process sends over a Pipe, a consumer process receives (seed 001
// "使用pipe实现进程间通信").
//
// Python:  send_pi, recv_pi = Pipe()
//          pro = Process(target=produce, args=(send_pi,)); con = Process(target=consume,
//          args=(recv_pi,)) pro.start(); con.start(); pro.join(); con.join()
#include <mproc/mproc.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

void produce(mproc::Connection<std::string> pipe) {
  pipe.send("666");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

void consume(mproc::Connection<std::string> pipe) {
  std::printf("%s\n", pipe.recv().c_str());
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  auto [send_pi, recv_pi] = mproc::Pipe<std::string>();
  mproc::Process pro(produce, send_pi);
  mproc::Process con(consume, recv_pi);
  pro.start();
  con.start();
  pro.join();
  con.join();
  return pro.exitcode() == 0 && con.exitcode() == 0 ? 0 : 1;
}
