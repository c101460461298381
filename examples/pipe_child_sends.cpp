// A child sends one object over a Pipe and closes its end (seed 002 "管道").
//
// Python:  producer, customer = Pipe()
//          process = Process(target=customers, args=(customer,)); process.start()
//          print(producer.recv()); process.join()
//          def customers(c): c.send('l am a snake'); c.close()
#include <mproc/mproc.hpp>

#include <cstdio>
#include <string>

void customers(mproc::Connection<std::string> c) {
  c.send("l am a snake");
  c.close();
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  auto [producer, customer] = mproc::Pipe<std::string>();  // duplex
  mproc::Process process(customers, customer);
  process.start();
  std::printf("%s\n", producer.recv().c_str());
  process.join();
  return process.exitcode() == 0 ? 0 : 1;
}
