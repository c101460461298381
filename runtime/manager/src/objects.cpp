// The objects a Manager's server owns: each stores values as their encoded bytes and applies
// one request at a time under its own lock.
#include "objects.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/serialize/detail/callable.hpp"

namespace mproc::detail {

bool peer_gone(const Session& s) noexcept {
  pollfd p{s.fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

template <class Pred>
bool ManagedObject::wait(std::unique_lock<std::mutex>& lock, Session& s, std::int64_t timeout_ns,
                         Pred pred) {
  using clock = std::chrono::steady_clock;
  constexpr std::int64_t kForever = std::int64_t{365} * 24 * 3600 * 1'000'000'000;
  if (timeout_ns > kForever) timeout_ns = -1;  // nanoseconds::max() must not overflow the clock
  const auto deadline = clock::now() + std::chrono::nanoseconds(timeout_ns < 0 ? 0 : timeout_ns);
  // Slices: a hung-up client or a stopping server is noticed within one of them.
  constexpr auto kSlice = std::chrono::milliseconds(50);
  if (pred()) return true;
  for (;;) {
    if (s.stopping->load()) throw ManagerError("the manager is shutting down");
    if (peer_gone(s)) throw PeerGone{};
    if (timeout_ns < 0) {
      cv_.wait_for(lock, kSlice);
    } else {
      const auto now = clock::now();
      if (now >= deadline) break;
      cv_.wait_for(lock, std::min<clock::duration>(deadline - now, kSlice));
    }
    if (pred()) break;
  }
  if (!pred()) return false;
  // The client may have died while it waited: then it must take nothing (an item it would
  // never receive, a lock nobody would release).
  if (peer_gone(s)) throw PeerGone{};
  return true;
}

namespace {

template <class T>
T rd(WireInputArchive& in) {
  T x{};
  in(x);
  return x;
}

[[noreturn]] void bad_op(Op op, const char* kind) {
  throw SerializationError("operation " + std::to_string(static_cast<int>(op)) +
                           " is not defined for a manager " + kind);
}

// f(value) on the server: the callable part the client encoded, followed by the value's bytes,
// is exactly a one-item map task for the invoker that the client's f instantiated.
std::string apply_updater(const Session& s, const std::string& callable, const std::string& value) {
  if (!s.same_executable) {
    throw SerializationError(
        "update_with: this client runs another executable than the manager's server, so its "
        "function cannot be named there (use a LockProxy around get and set instead)");
  }
  Bytes payload;
  payload.reserve(callable.size() + value.size());
  payload.insert(payload.end(), callable.begin(), callable.end());
  payload.insert(payload.end(), value.begin(), value.end());
  Bytes out;
  invoke_payload(payload, out, s.max_message);
  return std::string(out.begin(), out.end());
}

// Python index rules: negative counts from the end. std::out_of_range outside.
std::size_t index(std::int64_t i, std::size_t size, const char* what) {
  const std::int64_t n = static_cast<std::int64_t>(size);
  const std::int64_t j = i < 0 ? i + n : i;
  if (j < 0 || j >= n) {
    throw std::out_of_range(std::string(what) + ": index " + std::to_string(i) +
                            " out of range for a list of " + std::to_string(size));
  }
  return static_cast<std::size_t>(j);
}

class DictObject final : public ManagedObject {
 public:
  using ManagedObject::ManagedObject;

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::lock_guard lock(mu_);
    switch (op) {
      case Op::kDictSet: {
        auto k = rd<std::string>(in);
        put(std::move(k), rd<std::string>(in));
        return;
      }
      case Op::kDictGet:
      case Op::kDictPop: {
        const auto it = index_.find(rd<std::string>(in));
        out(it != index_.end());
        if (it == index_.end()) return;
        out(it->second->second);
        if (op == Op::kDictPop) {
          order_.erase(it->second);
          index_.erase(it);
        }
        return;
      }
      case Op::kDictContains:
        out(index_.count(rd<std::string>(in)) != 0);
        return;
      case Op::kDictErase: {
        const auto it = index_.find(rd<std::string>(in));
        out(it != index_.end());
        if (it != index_.end()) {
          order_.erase(it->second);
          index_.erase(it);
        }
        return;
      }
      case Op::kDictSize:
        out(static_cast<std::uint64_t>(order_.size()));
        return;
      case Op::kDictKeys:
      case Op::kDictValues: {
        std::vector<std::string> v;
        v.reserve(order_.size());
        for (const auto& [k, x] : order_) v.push_back(op == Op::kDictKeys ? k : x);
        out(v);
        return;
      }
      case Op::kDictItems: {
        const std::vector<std::pair<std::string, std::string>> v(order_.begin(), order_.end());
        out(v);
        return;
      }
      case Op::kDictUpdate:
        for (auto& [k, v] : rd<std::vector<std::pair<std::string, std::string>>>(in)) {
          put(std::move(k), std::move(v));
        }
        return;
      case Op::kDictClear:
        order_.clear();
        index_.clear();
        return;
      case Op::kDictSetDefault: {
        auto k = rd<std::string>(in);
        auto def = rd<std::string>(in);
        const auto it = index_.find(k);
        if (it != index_.end()) {
          out(it->second->second);
        } else {
          out(def);
          put(std::move(k), std::move(def));
        }
        return;
      }
      case Op::kDictUpdateWith: {
        auto k = rd<std::string>(in);
        auto initial = rd<std::string>(in);
        const auto callable = rd<std::string>(in);
        const auto it = index_.find(k);
        std::string v =
            apply_updater(s, callable, it != index_.end() ? it->second->second : initial);
        out(v);
        put(std::move(k), std::move(v));
        return;
      }
      default:
        bad_op(op, "dict");
    }
  }

 private:
  void put(std::string k, std::string v) {
    const auto it = index_.find(k);
    if (it != index_.end()) {
      it->second->second = std::move(v);  // an existing key keeps its place (Python's dict)
      return;
    }
    order_.emplace_back(k, std::move(v));
    index_.emplace(std::move(k), std::prev(order_.end()));
  }

  using Order = std::list<std::pair<std::string, std::string>>;
  Order order_;
  std::unordered_map<std::string, Order::iterator> index_;
};

class ListObject final : public ManagedObject {
 public:
  using ManagedObject::ManagedObject;

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session&) override {
    std::lock_guard lock(mu_);
    switch (op) {
      case Op::kListAppend:
        items_.push_back(rd<std::string>(in));
        return;
      case Op::kListExtend:
        for (auto& x : rd<std::vector<std::string>>(in)) items_.push_back(std::move(x));
        return;
      case Op::kListAt:
        out(items_[index(rd<std::int64_t>(in), items_.size(), "ListProxy::at")]);
        return;
      case Op::kListSet: {
        const std::size_t i = index(rd<std::int64_t>(in), items_.size(), "ListProxy::set");
        items_[i] = rd<std::string>(in);
        return;
      }
      case Op::kListSize:
        out(static_cast<std::uint64_t>(items_.size()));
        return;
      case Op::kListPop: {
        if (items_.empty()) throw std::out_of_range("ListProxy::pop: pop from an empty list");
        const std::size_t i = index(rd<std::int64_t>(in), items_.size(), "ListProxy::pop");
        out(items_[i]);
        items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
      case Op::kListSnapshot:
        out(items_);
        return;
      case Op::kListClear:
        items_.clear();
        return;
      case Op::kListInsert: {
        // Python's insert clamps the index: past the end appends, before the start prepends.
        const std::int64_t n = static_cast<std::int64_t>(items_.size());
        std::int64_t i = rd<std::int64_t>(in);
        if (i < 0) i = std::max<std::int64_t>(0, i + n);
        i = std::min(i, n);
        items_.insert(items_.begin() + static_cast<std::ptrdiff_t>(i), rd<std::string>(in));
        return;
      }
      case Op::kListRemove: {
        // Values compare by their encoding (exact for integers, strings and their containers).
        const auto v = rd<std::string>(in);
        const auto it = std::find(items_.begin(), items_.end(), v);
        if (it == items_.end()) throw std::invalid_argument("ListProxy::remove: x not in list");
        items_.erase(it);
        return;
      }
      case Op::kListIndex: {
        const auto v = rd<std::string>(in);
        const std::int64_t n = static_cast<std::int64_t>(items_.size());
        const auto clamp = [n](std::int64_t i) {
          return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n);
        };
        const std::int64_t start = clamp(rd<std::int64_t>(in));
        const std::int64_t stop = clamp(rd<std::int64_t>(in));
        for (std::int64_t i = start; i < stop; ++i) {
          if (items_[static_cast<std::size_t>(i)] == v) {
            out(static_cast<std::uint64_t>(i));
            return;
          }
        }
        throw std::invalid_argument("ListProxy::index: x is not in list");
      }
      case Op::kListCount: {
        const auto v = rd<std::string>(in);
        out(static_cast<std::uint64_t>(std::count(items_.begin(), items_.end(), v)));
        return;
      }
      case Op::kListReverse:
        std::reverse(items_.begin(), items_.end());
        return;
      default:
        bad_op(op, "list");
    }
  }

 private:
  std::vector<std::string> items_;
};

class NamespaceObject final : public ManagedObject {
 public:
  using ManagedObject::ManagedObject;

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::lock_guard lock(mu_);
    switch (op) {
      case Op::kNsSet: {
        auto name = rd<std::string>(in);
        const auto tag = rd<std::uint64_t>(in);
        attrs_[std::move(name)] = {tag, rd<std::string>(in)};
        return;
      }
      case Op::kNsGet: {
        const auto it = attrs_.find(rd<std::string>(in));
        out(it != attrs_.end());
        if (it != attrs_.end()) out(it->second.first, it->second.second);
        return;
      }
      case Op::kNsContains:
        out(attrs_.count(rd<std::string>(in)) != 0);
        return;
      case Op::kNsErase:
        out(attrs_.erase(rd<std::string>(in)) != 0);
        return;
      case Op::kNsNames: {
        std::vector<std::string> names;
        for (const auto& [n, v] : attrs_) names.push_back(n);
        out(names);
        return;
      }
      case Op::kNsUpdateWith: {
        auto name = rd<std::string>(in);
        const auto tag = rd<std::uint64_t>(in);
        auto initial = rd<std::string>(in);
        const auto callable = rd<std::string>(in);
        const auto it = attrs_.find(name);
        if (it != attrs_.end() && it->second.first != tag) {
          throw SerializationError("NamespaceProxy::update_with: attribute '" + name +
                                   "' holds another type than the one asked for");
        }
        std::string v =
            apply_updater(s, callable, it != attrs_.end() ? it->second.second : initial);
        out(v);
        attrs_[std::move(name)] = {tag, std::move(v)};
        return;
      }
      default:
        bad_op(op, "Namespace");
    }
  }

 private:
  std::map<std::string, std::pair<std::uint64_t, std::string>> attrs_;
};

class ValueObject final : public ManagedObject {
 public:
  ValueObject(ObjectKind k, std::uint64_t tag, std::string init)
      : ManagedObject(k, tag), value_(std::move(init)) {}

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::lock_guard lock(mu_);
    switch (op) {
      case Op::kValueGet:
        out(value_);
        return;
      case Op::kValueSet:
        value_ = rd<std::string>(in);
        return;
      case Op::kValueUpdateWith:
        value_ = apply_updater(s, rd<std::string>(in), value_);
        out(value_);
        return;
      default:
        bad_op(op, "Value");
    }
  }

 private:
  std::string value_;
};

class QueueObject final : public ManagedObject {
 public:
  QueueObject(ObjectKind k, std::uint64_t tag, std::int64_t maxsize)
      : ManagedObject(k, tag), maxsize_(maxsize < 0 ? 0 : maxsize) {}

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::unique_lock lock(mu_);
    switch (op) {
      case Op::kQueuePut: {
        auto item = rd<std::string>(in);
        const bool block = rd<bool>(in);
        const auto timeout = rd<std::int64_t>(in);
        const auto room = [&] {
          return maxsize_ == 0 || static_cast<std::int64_t>(items_.size()) < maxsize_;
        };
        const bool ok = block ? wait(lock, s, timeout, room) : room();
        if (ok) {
          items_.push_back(std::move(item));
          ++unfinished_;
          cv_.notify_all();
        }
        out(ok);
        return;
      }
      case Op::kQueueGet: {
        const bool block = rd<bool>(in);
        const auto timeout = rd<std::int64_t>(in);
        const auto some = [&] { return !items_.empty(); };
        const bool ok = block ? wait(lock, s, timeout, some) : some();
        out(ok);
        if (ok) {
          out(items_.front());
          items_.pop_front();
          cv_.notify_all();
        }
        return;
      }
      case Op::kQueueSize:
        out(static_cast<std::uint64_t>(items_.size()));
        return;
      case Op::kQueueMaxsize:
        out(maxsize_);
        return;
      case Op::kQueueTaskDone:
        if (unfinished_ == 0) throw LockError("task_done() called too many times");
        if (--unfinished_ == 0) cv_.notify_all();
        return;
      case Op::kQueueJoin:
        out(wait(lock, s, rd<std::int64_t>(in), [&] { return unfinished_ == 0; }));
        return;
      default:
        bad_op(op, "Queue");
    }
  }

 private:
  std::deque<std::string> items_;
  std::int64_t maxsize_;
  std::uint64_t unfinished_ = 0;
};

class LockObject final : public ManagedObject {
 public:
  using ManagedObject::ManagedObject;

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::unique_lock lock(mu_);
    const bool recursive = kind == ObjectKind::kRLock;
    switch (op) {
      case Op::kLockAcquire: {
        const bool block = rd<bool>(in);
        const auto timeout = rd<std::int64_t>(in);
        if (recursive && owner_ == s.id) {
          ++count_;
          out(true);
          return;
        }
        if (!recursive && owner_ == s.id && block && timeout < 0) {
          throw LockError(
              "Lock::acquire: this thread already holds the manager Lock (it would "
              "wait forever; use RLock)");
        }
        const auto free = [&] { return owner_ == 0; };
        const bool ok = block ? wait(lock, s, timeout, free) : free();
        if (ok) {
          owner_ = s.id;
          count_ = 1;
        }
        out(ok);
        return;
      }
      case Op::kLockRelease:
        if (owner_ == 0) throw LockError("release of an unlocked manager lock");
        if (recursive && owner_ != s.id) {
          throw LockError("RLock::release: this thread does not hold the manager RLock");
        }
        if (!recursive || --count_ == 0) {
          owner_ = 0;
          count_ = 0;
          cv_.notify_all();
        }
        return;
      case Op::kLockLocked:
        out(owner_ != 0);
        return;
      default:
        bad_op(op, "Lock");
    }
  }

  void disconnected(std::uint64_t session) override {
    std::lock_guard lock(mu_);
    if (owner_ == session) {  // its holder died: a crash must not leave the lock held forever
      owner_ = 0;
      count_ = 0;
      cv_.notify_all();
    }
  }

 private:
  std::uint64_t owner_ = 0;  // session id; 0: free
  std::uint64_t count_ = 0;
};

class EventObject final : public ManagedObject {
 public:
  using ManagedObject::ManagedObject;

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::unique_lock lock(mu_);
    switch (op) {
      case Op::kEventSet:
        flag_ = true;
        cv_.notify_all();
        return;
      case Op::kEventClear:
        flag_ = false;
        return;
      case Op::kEventIsSet:
        out(flag_);
        return;
      case Op::kEventWait:
        out(wait(lock, s, rd<std::int64_t>(in), [&] { return flag_; }));
        return;
      default:
        bad_op(op, "Event");
    }
  }

 private:
  bool flag_ = false;
};

class SemaphoreObject final : public ManagedObject {
 public:
  SemaphoreObject(ObjectKind k, std::uint64_t tag, std::int64_t value)
      : ManagedObject(k, tag), value_(value), initial_(value) {
    if (value < 0) throw std::invalid_argument("Semaphore: initial value must be >= 0");
  }

  void handle(Op op, WireInputArchive& in, WireOutputArchive& out, Session& s) override {
    std::unique_lock lock(mu_);
    switch (op) {
      case Op::kSemAcquire: {
        const bool block = rd<bool>(in);
        const auto timeout = rd<std::int64_t>(in);
        const auto avail = [&] { return value_ > 0; };
        const bool ok = block ? wait(lock, s, timeout, avail) : avail();
        if (ok) --value_;
        out(ok);
        return;
      }
      case Op::kSemRelease: {
        const auto raw = rd<std::uint64_t>(in);
        if (raw > static_cast<std::uint64_t>(INT64_MAX - value_)) {
          throw LockError("Semaphore::release(" + std::to_string(raw) + ") overflows its value");
        }
        const auto n = static_cast<std::int64_t>(raw);
        if (kind == ObjectKind::kBoundedSemaphore && value_ + n > initial_) {
          throw LockError("BoundedSemaphore released too many times");
        }
        value_ += n;
        cv_.notify_all();
        return;
      }
      case Op::kSemValue:
        out(value_);
        return;
      default:
        bad_op(op, "Semaphore");
    }
  }

 private:
  std::int64_t value_;
  const std::int64_t initial_;
};

}  // namespace

std::unique_ptr<ManagedObject> make_object(ObjectKind kind, std::uint64_t tag, std::int64_t arg,
                                           const std::string& init) {
  switch (kind) {
    case ObjectKind::kDict:
      return std::make_unique<DictObject>(kind, tag);
    case ObjectKind::kList:
      return std::make_unique<ListObject>(kind, tag);
    case ObjectKind::kNamespace:
      return std::make_unique<NamespaceObject>(kind, tag);
    case ObjectKind::kValue:
      return std::make_unique<ValueObject>(kind, tag, init);
    case ObjectKind::kQueue:
      return std::make_unique<QueueObject>(kind, tag, arg);
    case ObjectKind::kLock:
    case ObjectKind::kRLock:
      return std::make_unique<LockObject>(kind, tag);
    case ObjectKind::kEvent:
      return std::make_unique<EventObject>(kind, tag);
    case ObjectKind::kSemaphore:
    case ObjectKind::kBoundedSemaphore:
      return std::make_unique<SemaphoreObject>(kind, tag, arg);
  }
  throw SerializationError("unknown manager object kind " + std::to_string(static_cast<int>(kind)));
}

}  // namespace mproc::detail
