// shared_counters.hpp — counters that a test and its pool's workers all see, whatever the
// start method: POSIX shared memory opened by name, so a spawned worker (which inherits no
// mapping) reaches it as well as a forked one. Tests use it to count how often each task ran.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace mproc_test {

class SharedCounters {
 public:
  explicit SharedCounters(std::size_t n) : n_(n) {
    static std::atomic<int> serial{0};
    name_ = "/mproc-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
    const int fd = ::shm_open(name_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(bytes())) != 0) {
      throw std::runtime_error("shm_open " + name_);
    }
    counters_ = map(fd, n);
    ::close(fd);
    for (std::size_t i = 0; i < n; ++i) counters_[i].store(0);
  }
  ~SharedCounters() {
    ::munmap(counters_, bytes());
    ::shm_unlink(name_.c_str());
  }
  SharedCounters(const SharedCounters&) = delete;
  SharedCounters& operator=(const SharedCounters&) = delete;

  const std::string& name() const { return name_; }
  std::atomic<int>& operator[](std::size_t i) const { return counters_[i]; }
  std::atomic<int>* data() const noexcept { return counters_; }
  std::size_t size() const noexcept { return n_; }

  // In a worker: the counters called `name`, mapped once per process and kept mapped.
  static std::atomic<int>* attach(const std::string& name, std::size_t n) {
    static std::string attached;
    static std::atomic<int>* base = nullptr;
    if (base == nullptr || attached != name) {
      const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
      if (fd < 0) throw std::runtime_error("shm_open " + name);
      base = map(fd, n);
      ::close(fd);
      attached = name;
    }
    return base;
  }

 private:
  static std::atomic<int>* map(int fd, std::size_t n) {
    void* p =
        ::mmap(nullptr, n * sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap shared counters");
    return static_cast<std::atomic<int>*>(p);
  }
  std::size_t bytes() const { return n_ * sizeof(std::atomic<int>); }

  std::size_t n_;
  std::string name_;
  std::atomic<int>* counters_ = nullptr;
};

}  // namespace mproc_test
