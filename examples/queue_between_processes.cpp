// A child puts a list on a Queue, the parent gets it (seed 002 "队列").
//
// Python:  q = Queue(); p = Process(target=example2, args=(q,)); p.start()
//          print(q.get())    # [38, 'snake', 'hello']
//          p.join()
//          def example2(q): q.put([38, "snake", 'hello'])
//
// A Queue<T> carries one C++ type; a list of ints and strings is a vector of variants.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <string>
#include <variant>
#include <vector>

using Item = std::variant<int, std::string>;

void example2(mproc::Queue<std::vector<Item>> q) {
  q.put({38, "snake", "hello"});
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Queue<std::vector<Item>> q;
  mproc::Process p(example2, q);
  p.start();
  const std::vector<Item> got = q.get();
  std::printf("[");
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (i) std::printf(", ");
    if (const int* n = std::get_if<int>(&got[i])) {
      std::printf("%d", *n);
    } else {
      std::printf("'%s'", std::get<std::string>(got[i]).c_str());
    }
  }
  std::printf("]\n");
  p.join();
  return p.exitcode() == 0 && got == std::vector<Item>{38, "snake", "hello"} ? 0 : 1;
}
