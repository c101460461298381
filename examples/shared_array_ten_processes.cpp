// Ten processes add 100 to the first element of one shared Array (seed 001 "使用Array共享数据").
//
// Python:  temp = Array('i', [1, 2, 3, 4])
//          for i in range(10): Process(target=func, args=(i, temp)).start()
//          def func(i, temp): temp[0] += 100
//
// `temp[0] += 100` in Python is a read and a write, each under the array's lock but not the two
// together: two processes can read the same value and one addition is lost. Here the process
// holds the array's own lock around the whole update, so the final value is always 1001. Which
// process prints which value is a race; the set of values printed (101, 201, ..., 1001) is not.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <deque>
#include <mutex>

void func(int i, mproc::Array<int> temp) {
  std::lock_guard guard(temp);  // an Array locks its own RLock
  temp[0] += 100;
  std::printf("process %d: temp[0] after += 100 -> %d\n", i, temp[0]);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Array<int> temp{1, 2, 3, 4};
  std::deque<mproc::Process> processes;  // a Process can be neither copied nor moved
  for (int i = 0; i < 10; ++i) processes.emplace_back(func, i, temp).start();
  bool ok = true;
  for (auto& p : processes) {
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  const auto v = temp.to_vector();
  std::printf("final: [%d, %d, %d, %d]\n", v[0], v[1], v[2], v[3]);
  return ok && v == std::vector<int>{1001, 2, 3, 4} ? 0 : 1;
}
