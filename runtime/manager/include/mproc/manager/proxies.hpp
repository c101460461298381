// mproc/manager/proxies.hpp — typed handles on objects that live in a Manager's server process.
//
//   mproc::Manager m;
//   auto d = m.dict<std::string, int>();          // d = Manager().dict()
//   d.set("num", 100);                            // d["num"] = 100
//   d.update_with("hits", add_one);               // atomic read-modify-write on the server
//   mproc::Process p(worker, d);                  // proxies go to Processes and Pool tasks
//
// Every call is one round trip to the server, which applies it to the one real object while
// holding that object's lock: each call is atomic, a sequence of calls is not. For a
// read-modify-write use update_with (the function runs on the server, so it must be a plain
// function, a captureless lambda or a serializable function object, as a Pool task's) or hold a
// LockProxy around the sequence. While an update_with function runs, other calls on the same
// object wait for it (it holds the object's lock): keep those functions short.
//
// A proxy is a small value (the server's address, its authkey, an object id): copy it, pass it
// to a Process or as a Pool task's argument, or send it through a Queue. It carries the authkey
// in the clear, like a Python proxy pickled for a spawned child: only send it where the key may
// go. A default-constructed proxy is empty: calls raise ClosedError.
//
// Keys are compared by their encoded bytes: use key types whose equal values encode equally
// (numbers, strings, tuples and vectors of them; not unordered containers).
//
// Thread safety: distinct and shared proxies may be used from any thread; each thread has its
// own connection to the server, so a call blocked on the server (QueueProxy::get,
// LockProxy::acquire, EventProxy::wait) delays no other thread.
//
// Throws (every call): ManagerError when the server cannot be reached or dies during the call
// (never a hang: the kernel closes the connection when the server process ends);
// AuthenticationError when the key is wrong; SerializationError when a value does not encode
// or decode, or a proxy arrives with a different type than it was made with; ClosedError on an
// empty proxy. Errors raised on the server (std::out_of_range for a missing key or index, Empty,
// Full, LockError, whatever an update_with function throws) come back as themselves.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/manager/detail/client.hpp"
#include "mproc/serialize/detail/callable.hpp"

namespace mproc {

namespace detail {

inline std::int64_t to_ns(std::chrono::nanoseconds d) noexcept {
  return d.count() < 0 ? 0 : static_cast<std::int64_t>(d.count());
}

template <class F, class V>
std::string encode_updater(const F& f) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_same_v<call_result_t<Fn, V, CallShape::kMap>, V>,
                "mproc: update_with(f) needs f(V) to return V (the entry's new value)");
  Bytes b;
  b.reserve(64);
  encode_callable<Fn, V, CallShape::kMap>(b, f, 1);
  return std::string(b.begin(), b.end());
}

// What every proxy shares: its reference, the request helper and (de)serialization that checks
// the kind and type a proxy arrives with.
template <class Derived>
class ProxyBase {
 public:
  ProxyBase() = default;
  explicit ProxyBase(ProxyRef ref) : ref_(std::move(ref)) {}

  // The object's id on its server and the server's address.
  std::uint32_t id() const noexcept { return ref_.id; }
  const std::string& address() const noexcept { return ref_.address; }
  bool empty() const noexcept { return ref_.id == 0; }

  template <class A>
  void save(A& ar) const {
    ar(ref_);
  }
  template <class A>
  void load(A& ar) {
    ar(ref_);
    if (!kind_ok(ref_.kind) || ref_.tag != Derived::tag()) {
      ref_ = {};
      throw SerializationError(
          "a manager proxy arrived as a different proxy type than it was "
          "made as");
    }
  }

 protected:
  // LockProxy serves Lock and RLock, SemaphoreProxy both semaphores (kAltKind).
  static bool kind_ok(ObjectKind k) noexcept {
    if constexpr (requires { Derived::kAltKind; }) {
      return k == Derived::kKind || k == Derived::kAltKind;
    } else {
      return k == Derived::kKind;
    }
  }

  template <class... A>
  Bytes invoke(Op op, const A&... fields) const {
    if (ref_.id == 0) throw ClosedError("empty manager proxy");
    Bytes req = begin_request(ref_.id, op);
    {
      WireOutputArchive ar(req);
      (ar(fields), ...);
    }
    return call(ref_, req);
  }

  ProxyRef ref_;
};

}  // namespace detail

// Manager().dict(): a dictionary in insertion order (Python's dict).
template <class K, class V>
class DictProxy : public detail::ProxyBase<DictProxy<K, V>> {
  using Base = detail::ProxyBase<DictProxy<K, V>>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kDict;
  static std::uint64_t tag() noexcept { return detail::type_tag_of<std::pair<K, V>>(); }

  DictProxy() = default;
  explicit DictProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  // d[k] = v
  void set(const K& k, const V& v) { this->invoke(Op::kDictSet, enc(k), enc(v)); }
  // d[k]: std::out_of_range when absent (Python's KeyError).
  V get(const K& k) const {
    auto r = lookup(Op::kDictGet, k);
    if (!r.first) throw std::out_of_range("mproc::DictProxy::get: no such key");
    return dec(r.second);
  }
  // d.get(k, default)
  V get(const K& k, const V& def) const {
    auto r = lookup(Op::kDictGet, k);
    return r.first ? dec(r.second) : def;
  }
  bool contains(const K& k) const {
    return detail::Reply(this->invoke(Op::kDictContains, enc(k))).template read<bool>();
  }
  // del d[k]; returns whether k was there.
  bool erase(const K& k) {
    return detail::Reply(this->invoke(Op::kDictErase, enc(k))).template read<bool>();
  }
  // d.pop(k): std::out_of_range when absent; d.pop(k, default).
  V pop(const K& k) {
    auto r = lookup(Op::kDictPop, k);
    if (!r.first) throw std::out_of_range("mproc::DictProxy::pop: no such key");
    return dec(r.second);
  }
  V pop(const K& k, const V& def) {
    auto r = lookup(Op::kDictPop, k);
    return r.first ? dec(r.second) : def;
  }
  std::size_t size() const {
    return detail::Reply(this->invoke(Op::kDictSize)).template read<std::uint64_t>();
  }
  std::vector<K> keys() const { return decode_all<K>(Op::kDictKeys); }
  std::vector<V> values() const { return decode_all<V>(Op::kDictValues); }
  // d.items(), in insertion order.
  std::vector<std::pair<K, V>> items() const {
    auto raw = detail::Reply(this->invoke(Op::kDictItems))
                   .template read<std::vector<std::pair<std::string, std::string>>>();
    std::vector<std::pair<K, V>> out;
    out.reserve(raw.size());
    for (auto& [k, v] : raw) out.emplace_back(detail::decode_value<K>(k), dec(v));
    return out;
  }
  // d.update(pairs): any range of pair-likes (a std::map, a vector of pairs); one atomic call.
  template <class Range>
  void update(const Range& pairs) {
    std::vector<std::pair<std::string, std::string>> raw;
    for (const auto& [k, v] : pairs) raw.emplace_back(enc(K(k)), enc(V(v)));
    this->invoke(Op::kDictUpdate, raw);
  }
  void clear() { this->invoke(Op::kDictClear); }
  // d.setdefault(k, default): the value at k, inserting `def` first if absent.
  V setdefault(const K& k, const V& def) {
    return dec(detail::Reply(this->invoke(Op::kDictSetDefault, enc(k), enc(def)))
                   .template read<std::string>());
  }
  // d[k] = f(d.get(k, initial)), atomically on the server; returns the new value. f runs in the
  // server process (a plain function, captureless lambda or serializable function object of
  // this executable); what it throws comes back here and leaves the entry unchanged.
  template <class F>
  V update_with(const K& k, F f, const V& initial = V{}) {
    return dec(detail::Reply(this->invoke(Op::kDictUpdateWith, enc(k), enc(initial),
                                          detail::encode_updater<F, V>(f)))
                   .template read<std::string>());
  }
  // A copy of the whole dictionary.
  std::map<K, V> snapshot() const {
    std::map<K, V> m;
    for (auto& [k, v] : items()) m.emplace(std::move(k), std::move(v));
    return m;
  }

 private:
  template <class T>
  static std::string enc(const T& x) {
    return detail::encode_value(x);
  }
  static V dec(const std::string& s) { return detail::decode_value<V>(s); }
  std::pair<bool, std::string> lookup(Op op, const K& k) const {
    detail::Bytes b = this->invoke(op, enc(k));
    detail::Reply r(b);
    const bool found = r.template read<bool>();
    std::string v = found ? r.template read<std::string>() : std::string();
    return {found, std::move(v)};
  }
  template <class T>
  std::vector<T> decode_all(Op op) const {
    auto raw = detail::Reply(this->invoke(op)).template read<std::vector<std::string>>();
    std::vector<T> out;
    out.reserve(raw.size());
    for (auto& s : raw) out.push_back(detail::decode_value<T>(s));
    return out;
  }
};

// Manager().list(). Indexes may be negative (from the end), as in Python.
template <class T>
class ListProxy : public detail::ProxyBase<ListProxy<T>> {
  using Base = detail::ProxyBase<ListProxy<T>>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kList;
  static std::uint64_t tag() noexcept { return detail::type_tag_of<T>(); }

  ListProxy() = default;
  explicit ListProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  void append(const T& x) { this->invoke(Op::kListAppend, detail::encode_value(x)); }
  // Appends every element of `xs` in one atomic call.
  template <class Range>
  void extend(const Range& xs) {
    std::vector<std::string> raw;
    for (const auto& x : xs) raw.push_back(detail::encode_value(T(x)));
    this->invoke(Op::kListExtend, raw);
  }
  // l[i]: std::out_of_range outside the list.
  T at(std::int64_t i) const { return one(Op::kListAt, i); }
  void set(std::int64_t i, const T& x) { this->invoke(Op::kListSet, i, detail::encode_value(x)); }
  std::size_t size() const {
    return detail::Reply(this->invoke(Op::kListSize)).template read<std::uint64_t>();
  }
  // l.pop(i) (default: the last); std::out_of_range on an empty list or a bad index.
  T pop(std::int64_t i = -1) { return one(Op::kListPop, i); }
  // A copy of the whole list.
  std::vector<T> snapshot() const {
    auto raw =
        detail::Reply(this->invoke(Op::kListSnapshot)).template read<std::vector<std::string>>();
    std::vector<T> out;
    out.reserve(raw.size());
    for (auto& s : raw) out.push_back(detail::decode_value<T>(s));
    return out;
  }
  void clear() { this->invoke(Op::kListClear); }
  // l.insert(i, x): Python's rules (a negative i counts from the end; out of range clamps).
  void insert(std::int64_t i, const T& x) {
    this->invoke(Op::kListInsert, i, detail::encode_value(x));
  }
  // l.remove(x): removes the first equal element; std::invalid_argument (Python's ValueError)
  // when there is none. Elements compare by their encoded bytes (exact for integers, strings
  // and containers of them; 0.0 and -0.0 differ).
  void remove(const T& x) { this->invoke(Op::kListRemove, detail::encode_value(x)); }
  // l.index(x[, start[, stop]]): position of the first equal element in [start, stop);
  // std::invalid_argument when there is none.
  std::size_t index(const T& x, std::int64_t start = 0,
                    std::int64_t stop = std::numeric_limits<std::int64_t>::max()) const {
    return detail::Reply(this->invoke(Op::kListIndex, detail::encode_value(x), start, stop))
        .template read<std::uint64_t>();
  }
  // l.count(x)
  std::size_t count(const T& x) const {
    return detail::Reply(this->invoke(Op::kListCount, detail::encode_value(x)))
        .template read<std::uint64_t>();
  }
  // l.reverse(), in place, atomically.
  void reverse() { this->invoke(Op::kListReverse); }

  // for (T x : l): iterates over one snapshot taken by begin() (one round trip; later changes
  // by others are not seen, as iterating a copy).
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(std::shared_ptr<const std::vector<T>> v) : v_(std::move(v)) {}
    const T& operator*() const { return (*v_)[i_]; }
    const T* operator->() const { return &(*v_)[i_]; }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    void operator++(int) { ++i_; }
    bool operator==(std::default_sentinel_t) const noexcept { return !v_ || i_ >= v_->size(); }

   private:
    std::shared_ptr<const std::vector<T>> v_;
    std::size_t i_ = 0;
  };
  iterator begin() const { return iterator(std::make_shared<const std::vector<T>>(snapshot())); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  T one(Op op, std::int64_t i) const {
    return detail::decode_value<T>(detail::Reply(this->invoke(op, i)).template read<std::string>());
  }
};

// Manager().Namespace(): named attributes, each with its own type (ns.x = 1; ns.y = "a").
// Reading an attribute as another type than it was set with is a SerializationError.
class NamespaceProxy : public detail::ProxyBase<NamespaceProxy> {
  using Base = detail::ProxyBase<NamespaceProxy>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kNamespace;
  static std::uint64_t tag() noexcept { return 0; }

  NamespaceProxy() = default;
  explicit NamespaceProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  // ns.name = value
  template <class T>
  void set(const std::string& name, const T& value) {
    this->invoke(Op::kNsSet, name, detail::type_tag_of<T>(), detail::encode_value(value));
  }
  // ns.name: std::out_of_range when not set (Python's AttributeError).
  template <class T>
  T get(const std::string& name) const {
    auto v = lookup<T>(name);
    if (!v.first) throw std::out_of_range("mproc::NamespaceProxy: no attribute '" + name + "'");
    return detail::decode_value<T>(v.second);
  }
  // getattr(ns, name, default)
  template <class T>
  T get(const std::string& name, const T& def) const {
    auto v = lookup<T>(name);
    return v.first ? detail::decode_value<T>(v.second) : def;
  }
  bool contains(const std::string& name) const {
    return detail::Reply(this->invoke(Op::kNsContains, name)).template read<bool>();
  }
  bool erase(const std::string& name) {
    return detail::Reply(this->invoke(Op::kNsErase, name)).template read<bool>();
  }
  // The attribute names, sorted.
  std::vector<std::string> names() const {
    return detail::Reply(this->invoke(Op::kNsNames)).template read<std::vector<std::string>>();
  }
  // ns.name = f(ns.name or initial), atomically on the server (see DictProxy::update_with).
  template <class T, class F>
  T update_with(const std::string& name, F f, const T& initial = T{}) {
    return detail::decode_value<T>(
        detail::Reply(this->invoke(Op::kNsUpdateWith, name, detail::type_tag_of<T>(),
                                   detail::encode_value(initial), detail::encode_updater<F, T>(f)))
            .template read<std::string>());
  }

 private:
  template <class T>
  std::pair<bool, std::string> lookup(const std::string& name) const {
    detail::Bytes b = this->invoke(Op::kNsGet, name);
    detail::Reply r(b);
    if (!r.read<bool>()) return {false, {}};
    const auto t = r.read<std::uint64_t>();
    if (t != detail::type_tag_of<T>()) {
      throw SerializationError("mproc::NamespaceProxy: attribute '" + name +
                               "' holds another type than the one asked for");
    }
    return {true, r.read<std::string>()};
  }
};

// Manager().Value(typecode, v): one value of type T.
template <class T>
class ValueProxy : public detail::ProxyBase<ValueProxy<T>> {
  using Base = detail::ProxyBase<ValueProxy<T>>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kValue;
  static std::uint64_t tag() noexcept { return detail::type_tag_of<T>(); }

  ValueProxy() = default;
  explicit ValueProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  T get() const {
    return detail::decode_value<T>(
        detail::Reply(this->invoke(Op::kValueGet)).template read<std::string>());
  }
  void set(const T& x) { this->invoke(Op::kValueSet, detail::encode_value(x)); }
  // Python's v.value and v.value = x.
  T value() const { return get(); }
  void value(const T& x) { set(x); }
  // v.value = f(v.value), atomically on the server; returns the new value.
  template <class F>
  T update_with(F f) {
    return detail::decode_value<T>(
        detail::Reply(this->invoke(Op::kValueUpdateWith, detail::encode_updater<F, T>(f)))
            .template read<std::string>());
  }
};

// Manager().Queue(maxsize): Python's queue.Queue in the server, with mproc::Queue's API.
// Throws Empty / Full as mproc::Queue does.
template <class T>
class QueueProxy : public detail::ProxyBase<QueueProxy<T>> {
  using Base = detail::ProxyBase<QueueProxy<T>>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kQueue;
  static std::uint64_t tag() noexcept { return detail::type_tag_of<T>(); }

  QueueProxy() = default;
  explicit QueueProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  void put(const T& x, bool block = true) { put_impl(x, block, -1); }
  template <class Rep, class Period>
  void put(const T& x, std::chrono::duration<Rep, Period> timeout) {
    put_impl(x, true, detail::to_ns(timeout));
  }
  void put_nowait(const T& x) { put_impl(x, false, 0); }

  T get(bool block = true) { return get_impl(block, -1); }
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_impl(true, detail::to_ns(timeout));
  }
  T get(bool block, std::chrono::nanoseconds timeout) {
    return get_impl(block, detail::to_ns(timeout));
  }
  T get_nowait() { return get_impl(false, 0); }

  std::size_t qsize() const {
    return detail::Reply(this->invoke(Op::kQueueSize)).template read<std::uint64_t>();
  }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    const auto m = maxsize();
    return m > 0 && qsize() >= static_cast<std::size_t>(m);
  }
  // 0: unbounded.
  std::int64_t maxsize() const {
    return detail::Reply(this->invoke(Op::kQueueMaxsize)).template read<std::int64_t>();
  }
  // queue.Queue's task_done() and join(): join returns once every item put was marked done.
  // task_done() more often than items were put is a LockError (Python's ValueError).
  void task_done() { this->invoke(Op::kQueueTaskDone); }
  void join() { join_impl(-1); }
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_impl(detail::to_ns(timeout));
  }

 private:
  void put_impl(const T& x, bool block, std::int64_t timeout_ns) {
    if (!detail::Reply(this->invoke(Op::kQueuePut, detail::encode_value(x), block, timeout_ns))
             .template read<bool>()) {
      throw Full("the manager queue is full");
    }
  }
  T get_impl(bool block, std::int64_t timeout_ns) {
    detail::Bytes b = this->invoke(Op::kQueueGet, block, timeout_ns);
    detail::Reply r(b);
    if (!r.template read<bool>()) throw Empty("the manager queue is empty");
    return detail::decode_value<T>(r.template read<std::string>());
  }
  bool join_impl(std::int64_t timeout_ns) {
    return detail::Reply(this->invoke(Op::kQueueJoin, timeout_ns)).template read<bool>();
  }
};

// Manager().Lock() / RLock(). The owner is the calling thread's connection (one per thread and
// process): an RLock may be re-acquired by its owner, and only the owner may release it; a Lock
// may be released by anyone (threading.Lock). A lock whose owner disconnects (its process died)
// is released by the server, so a crash cannot leave it held forever. Works with
// std::lock_guard / std::unique_lock (lock, unlock, try_lock).
class LockProxy : public detail::ProxyBase<LockProxy> {
  using Base = detail::ProxyBase<LockProxy>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kLock;
  static constexpr detail::ObjectKind kAltKind = detail::ObjectKind::kRLock;
  static std::uint64_t tag() noexcept { return 0; }

  LockProxy() = default;
  explicit LockProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  // Python's acquire(block=True, timeout=None). A Lock acquired again by its own holder would
  // wait forever: with block and no timeout that is a LockError instead.
  bool acquire(bool block = true) { return acquire_impl(block, -1); }
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return acquire_impl(block, detail::to_ns(timeout));
  }
  // LockError when this thread does not hold an RLock, or nobody holds the Lock.
  void release() { this->invoke(Op::kLockRelease); }
  bool locked() const { return detail::Reply(this->invoke(Op::kLockLocked)).template read<bool>(); }

  void lock() { acquire(true); }
  void unlock() { release(); }
  bool try_lock() { return acquire(false); }

 private:
  bool acquire_impl(bool block, std::int64_t timeout_ns) {
    return detail::Reply(this->invoke(Op::kLockAcquire, block, timeout_ns)).template read<bool>();
  }
};

// Manager().Event().
class EventProxy : public detail::ProxyBase<EventProxy> {
  using Base = detail::ProxyBase<EventProxy>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kEvent;
  static std::uint64_t tag() noexcept { return 0; }

  EventProxy() = default;
  explicit EventProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  void set() { this->invoke(Op::kEventSet); }
  void clear() { this->invoke(Op::kEventClear); }
  bool is_set() const { return detail::Reply(this->invoke(Op::kEventIsSet)).template read<bool>(); }
  // Waits until set; wait(timeout) returns false when the timeout passed first.
  bool wait() { return wait_impl(-1); }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_impl(detail::to_ns(timeout));
  }

 private:
  bool wait_impl(std::int64_t ns) {
    return detail::Reply(this->invoke(Op::kEventWait, ns)).template read<bool>();
  }
};

// Manager().Semaphore(n) / BoundedSemaphore(n). Units held by a process that dies are not
// returned (as Python). A BoundedSemaphore released above its initial value is a LockError.
class SemaphoreProxy : public detail::ProxyBase<SemaphoreProxy> {
  using Base = detail::ProxyBase<SemaphoreProxy>;
  using Op = detail::Op;

 public:
  static constexpr detail::ObjectKind kKind = detail::ObjectKind::kSemaphore;
  static constexpr detail::ObjectKind kAltKind = detail::ObjectKind::kBoundedSemaphore;
  static std::uint64_t tag() noexcept { return 0; }

  SemaphoreProxy() = default;
  explicit SemaphoreProxy(detail::ProxyRef r) : Base(std::move(r)) {}

  bool acquire(bool block = true) { return acquire_impl(block, -1); }
  template <class Rep, class Period>
  bool acquire(bool block, std::chrono::duration<Rep, Period> timeout) {
    return acquire_impl(block, detail::to_ns(timeout));
  }
  void release(std::uint64_t n = 1) { this->invoke(Op::kSemRelease, n); }
  std::int64_t value() const {
    return detail::Reply(this->invoke(Op::kSemValue)).template read<std::int64_t>();
  }
  void lock() { acquire(true); }
  void unlock() { release(); }
  bool try_lock() { return acquire(false); }

 private:
  bool acquire_impl(bool block, std::int64_t timeout_ns) {
    return detail::Reply(this->invoke(Op::kSemAcquire, block, timeout_ns)).template read<bool>();
  }
};

}  // namespace mproc
