// Ten processes update one dictionary held by a Manager (seed 001 "使用Manager共享数据").
//
// Python:  dic = Manager().dict()
//          for i in range(10):
//              p = Process(target=func, args=(i, dic)); p.start(); p.join()
//          def func(i, dic): dic["num"] = 100 + i; print(i, dic.items())
//
// The dictionary lives in the manager's server process; the proxy `dic` is a small value that
// each child receives as an argument and uses to call the server. The processes run one after
// another (start, then join), so the output is fully defined.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <string>

void func(int i, mproc::DictProxy<std::string, int> dic) {
  dic.set("num", 100 + i);  // dic["num"] = 100 + i
  std::printf("process %d changed it to [", i);
  for (const auto& [k, v] : dic.items()) std::printf("('%s', %d)", k.c_str(), v);
  std::printf("]\n");
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Manager manager;
  auto dic = manager.dict<std::string, int>();
  bool ok = true;
  for (int i = 0; i < 10; ++i) {
    mproc::Process p(func, i, dic);
    p.start();
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  std::printf("final: num = %d\n", dic.get("num"));
  return ok && dic.get("num") == 109 && dic.size() == 1 ? 0 : 1;
}
