#include "mproc/runtime/detail/fd_transfer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "mproc/errors.hpp"

namespace mproc::detail {
namespace {
thread_local std::vector<int>* t_collector = nullptr;
thread_local std::vector<int>* t_adopter = nullptr;
}  // namespace

FdCollector::FdCollector(std::vector<int>& out) noexcept : prev_(t_collector) {
  t_collector = &out;
}
FdCollector::~FdCollector() {
  t_collector = prev_;
}

FdAdopter::FdAdopter(std::vector<int>& inherited) noexcept : prev_(t_adopter), fds_(inherited) {
  t_adopter = &inherited;
}
FdAdopter::~FdAdopter() {
  t_adopter = prev_;
  for (int fd : fds_) ::close(fd);
  fds_.clear();
}

int note_fd(int fd, const char* what) {
  if (t_collector == nullptr) {
    throw SerializationError(
        std::string("a ") + what +
        " can only cross to a child as an argument of mproc::Process (its descriptors cannot "
        "travel inside a task, a message or a queue item)");
  }
  if (fd < 0) throw SerializationError(std::string("cannot pass a closed ") + what);
  if (std::find(t_collector->begin(), t_collector->end(), fd) == t_collector->end()) {
    t_collector->push_back(fd);
  }
  return fd;
}

int take_fd(int fd) {
  if (t_adopter != nullptr) {
    auto it = std::find(t_adopter->begin(), t_adopter->end(), fd);
    if (it != t_adopter->end()) {
      t_adopter->erase(it);
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      return fd;
    }
  }
  const int copy = fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) {
    throw SerializationError("descriptor " + std::to_string(fd) +
                             " was not inherited by this process: " + std::strerror(errno));
  }
  return copy;
}

}  // namespace mproc::detail
