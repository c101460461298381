// Two writer processes and one reader on a one-way Pipe, read until EOFError
// (seed 003 "Pipes and Queues", pipe_in / pipe_out).
//
// Python:  pipe_o, pipe_i = mp.Pipe(duplex=False)
//          inp1 = mp.Process(target=pipe_in, args=(pipe_i, 'a'))
//          inp2 = mp.Process(target=pipe_in, args=(pipe_i, 'b'))
//          outp = mp.Process(target=pipe_out, args=(pipe_o,))
//          inp1.start(); inp2.start(); pipe_i.close(); outp.start()
//
// EOF comes once every copy of the writing end is closed: each writer closes its own, and the
// parent closes its copy before starting the reader (so the reader never holds one). The two
// writers' messages interleave in any order; each writer's own three arrive in order, which the
// reader checks (its exit code says whether they did).
#include <mproc/mproc.hpp>

#include <cstdio>
#include <string>

void pipe_in(mproc::Connection<std::string> pipe, std::string log) {
  for (int i = 0; i < 3; ++i) pipe.send("data:" + std::to_string(i) + ",log:" + log);
  pipe.close();
}

void pipe_out(mproc::Connection<std::string> pipe) {
  int next_a = 0, next_b = 0;
  bool in_order = true;
  try {
    while (true) {
      const std::string msg = pipe.recv();
      std::printf("msg %s\n", msg.c_str());
      int& next = msg.back() == 'a' ? next_a : next_b;
      in_order = in_order && msg.starts_with("data:" + std::to_string(next++));
    }
  } catch (const mproc::EOFError&) {
    std::printf("end\n");
  }
  if (!in_order || next_a != 3 || next_b != 3) mproc::exit(1);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  auto [pipe_o, pipe_i] = mproc::Pipe<std::string>(false);  // pipe_o reads, pipe_i writes
  mproc::Process inp1(pipe_in, pipe_i, "a");
  mproc::Process inp2(pipe_in, pipe_i, "b");
  mproc::Process outp(pipe_out, pipe_o);
  inp1.start();
  inp2.start();
  pipe_i.close();
  outp.start();
  inp1.join();
  inp2.join();
  outp.join();
  return inp1.exitcode() == 0 && inp2.exitcode() == 0 && outp.exitcode() == 0 ? 0 : 1;
}
