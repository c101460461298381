// mproc/shared_memory.hpp — values and arrays in shared memory: Python's multiprocessing.Value,
// Array, RawValue and RawArray (the sharedctypes module).
//
//   mproc::Value<int> counter(0);            // Python: counter = Value('i', 0)
//   mproc::Array<double> xs(100);            // Python: xs = Array('d', 100)
//   mproc::Array<int> a{1, 2, 3, 4};         // Python: a = Array('i', [1, 2, 3, 4])
//   pool.map(add_one, items_with(counter));  // handles pass to tasks (fork and spawn workers)
//   { std::lock_guard g(counter.get_lock()); ++counter.get_obj(); }
//
// T is any trivially copyable type (int, double, a POD struct) with alignment of at most 64.
// Value and Array carry an RLock (as Python's, re-entrant) unless made with `lock = false`, or
// share a given RLock. get()/set() (and Array's get(i)/set(i, v)/to_vector()) take that lock
// for one access; get_obj(), operator[], data(), span() and iteration do not: hold get_lock()
// around a read-modify-write (`counter.get() + 1` then set() is two separate critical
// sections, exactly as `counter.value += 1` in Python). A Value or Array is itself Lockable
// (lock/unlock/try_lock/acquire/release act on its lock), so std::lock_guard g(counter) works.
// For lock-free counters use std::atomic_ref on get_obj() of a RawValue.
//
// Robustness: the lock is a robust RLock — a process that dies holding it does not block the
// others; the next holder sees get_lock().previous_owner_died() (see synchronize.hpp). The data
// itself may then be half-updated; only the application knows how to repair it.
//
// Handles and memory. Every object here is a copyable handle: copies, fork children and
// decoded copies in other processes see the same memory. The memory lives in memfd-backed
// arenas mapped MAP_SHARED (small objects share one 64 KiB arena; large arrays get their own),
// so fork children inherit it and any other process — a spawned worker, a fork worker started
// before the object existed — maps it when it decodes a handle, by opening the memfd through
// /proc/<pid>/fd of the sender or the creator: one of them must be alive at that moment.
// An arena is unmapped from a process when the last handle into it there is destroyed, and
// the kernel frees it when no process maps it any more. Default construction creates a new
// zero-initialised object (Value<int>() is a new shared 0), as in Python.
//
// Thread safety: any number of threads and processes may use handles to the same object; the
// data is protected only by the lock, by your own synchronisation, or by atomic_ref. A single
// handle object must not be assigned to while another thread uses it.
//
// Errors: constructors throw std::system_error when shared memory cannot be had; get_lock()
// on an object made with lock = false throws LockError; decoding a handle whose memory cannot
// be reached, or that names an object of another type or size, throws SerializationError.
#pragma once

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "mproc/runtime/detail/shm_arena.hpp"
#include "mproc/synchronize.hpp"

namespace mproc {

template <class T>
concept SharedMemoryType =
    std::is_trivially_copyable_v<T> && alignof(T) <= 64 && std::is_default_constructible_v<T>;

// Python's RawValue: one T in shared memory, no lock.
template <SharedMemoryType T>
class RawValue {
 public:
  RawValue() : RawValue(T{}) {}
  explicit RawValue(const T& init) {
    ref_ = detail::ShmRef::allocate(sizeof(T), kind());
    new (ref_.get()) T(init);
    ref_.publish();
  }
  explicit RawValue(detail::EmptyHandle) {}

  // Plain (unsynchronised) read and write.
  T get() const { return *ptr(); }
  void set(const T& v) const { *ptr() = v; }
  // The shared object itself.
  T& get_obj() const { return *ptr(); }
  T& operator*() const { return *ptr(); }
  T* operator->() const { return ptr(); }

  template <class Archive>
  void save(Archive& ar) const {
    ar(ref_.describe());
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::ShmHandleWire w;
    ar(w);
    if (w.size != sizeof(T)) throw SerializationError("RawValue handle of the wrong size");
    ref_ = detail::ShmRef::attach(w, kind());
  }

 private:
  static std::uint64_t kind() { return detail::shm_kind(typeid(T)); }
  T* ptr() const {
    if (!ref_) throw LockError("use of an empty shared-memory handle");
    return static_cast<T*>(ref_.get());
  }
  detail::ShmRef ref_;
};

// Python's RawArray: n T's in shared memory, no lock.
template <SharedMemoryType T>
class RawArray {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  // n value-initialised elements (none by default).
  RawArray() : RawArray(std::size_t{0}) {}
  explicit RawArray(std::size_t n) : RawArray(n, nullptr) {}
  RawArray(std::initializer_list<T> init)
      : RawArray(std::span<const T>(init.begin(), init.size())) {}
  explicit RawArray(std::span<const T> init) : RawArray(init.size(), init.data()) {}
  explicit RawArray(detail::EmptyHandle) {}

  std::size_t size() const noexcept { return n_; }
  bool empty() const noexcept { return n_ == 0; }
  T& operator[](std::size_t i) const { return data()[i]; }
  T* data() const noexcept { return static_cast<T*>(ref_.get()); }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + n_; }
  std::span<T> span() const noexcept { return {data(), n_}; }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

  template <class Archive>
  void save(Archive& ar) const {
    ar(ref_.describe(), static_cast<std::uint64_t>(n_));
  }
  template <class Archive>
  void load(Archive& ar) {
    detail::ShmHandleWire w;
    std::uint64_t n = 0;
    ar(w, n);
    if (n > w.size / sizeof(T) || w.size != bytes(static_cast<std::size_t>(n))) {
      throw SerializationError("RawArray handle of the wrong size");
    }
    ref_ = detail::ShmRef::attach(w, kind());
    n_ = static_cast<std::size_t>(n);
  }

 private:
  RawArray(std::size_t n, const T* init) : n_(n) {
    ref_ = detail::ShmRef::allocate(bytes(n), kind());
    T* p = static_cast<T*>(ref_.get());
    for (std::size_t i = 0; i < n; ++i) new (p + i) T(init != nullptr ? init[i] : T{});
    ref_.publish();
  }
  static std::size_t bytes(std::size_t n) { return n == 0 ? 1 : n * sizeof(T); }
  static std::uint64_t kind() { return detail::shm_kind(typeid(T[1])); }
  detail::ShmRef ref_;
  std::size_t n_ = 0;
};

namespace detail {

// The optional lock of Value and Array, and their Lockable interface.
class SynchronizedBase {
 public:
  // The object's lock. Throws LockError if it was made with lock = false.
  RLock& get_lock() {
    if (!lock_) throw LockError("this shared object was made without a lock (lock = false)");
    return *lock_;
  }
  const RLock& get_lock() const {
    if (!lock_) throw LockError("this shared object was made without a lock (lock = false)");
    return *lock_;
  }
  bool has_lock() const noexcept { return lock_.has_value(); }

  bool acquire(bool block = true) const { return get_lock().acquire(block); }
  bool acquire(bool block, std::chrono::nanoseconds timeout) const {
    return get_lock().acquire(block, timeout);
  }
  void release() const { get_lock().release(); }
  void lock() const { get_lock().lock(); }
  void unlock() const { get_lock().unlock(); }
  bool try_lock() const { return get_lock().try_lock(); }

 protected:
  SynchronizedBase() = default;
  explicit SynchronizedBase(bool lock) {
    if (lock) lock_.emplace();
  }
  explicit SynchronizedBase(RLock lock) : lock_(std::move(lock)) {}

  // An RLock for the duration of one access, or nothing when there is no lock.
  std::unique_lock<const RLock> hold() const {
    return lock_ ? std::unique_lock<const RLock>(*lock_) : std::unique_lock<const RLock>();
  }

  template <class Archive>
  void save_lock(Archive& ar) const {
    ar(lock_.has_value());
    if (lock_) ar(*lock_);
  }
  template <class Archive>
  void load_lock(Archive& ar) {
    bool has = false;
    ar(has);
    lock_.reset();
    if (has) {
      RLock l{EmptyHandle{}};
      ar(l);
      lock_ = std::move(l);
    }
  }

  std::optional<RLock> lock_;
};

}  // namespace detail

// Python's Value: one T in shared memory with its own RLock (lock = true, the default), no lock
// (lock = false), or a given RLock.
template <SharedMemoryType T>
class Value : public detail::SynchronizedBase {
 public:
  Value() : Value(T{}) {}
  explicit Value(const T& init, bool lock = true) : SynchronizedBase(lock), data_(init) {}
  Value(const T& init, RLock lock) : SynchronizedBase(std::move(lock)), data_(init) {}
  explicit Value(detail::EmptyHandle e) : data_(e) {}

  // One read or write under the lock (Python's `v.value`).
  T get() const {
    auto g = hold();
    return data_.get();
  }
  void set(const T& v) const {
    auto g = hold();
    data_.set(v);
  }
  // The shared object, unlocked: hold get_lock() around its use.
  T& get_obj() const { return data_.get_obj(); }

  template <class Archive>
  void save(Archive& ar) const {
    save_lock(ar);
    ar(data_);
  }
  template <class Archive>
  void load(Archive& ar) {
    load_lock(ar);
    ar(data_);
  }

 private:
  RawValue<T> data_;
};

// Python's Array: n T's in shared memory with its own RLock (lock = true, the default), no
// lock (lock = false), or a given RLock.
template <SharedMemoryType T>
class Array : public detail::SynchronizedBase {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  // n value-initialised elements (none by default).
  Array() : Array(std::size_t{0}) {}
  explicit Array(std::size_t n, bool lock = true) : SynchronizedBase(lock), data_(n) {}
  Array(std::size_t n, RLock lock) : SynchronizedBase(std::move(lock)), data_(n) {}
  Array(std::initializer_list<T> init) : SynchronizedBase(true), data_(init) {}
  explicit Array(std::span<const T> init, bool lock = true) : SynchronizedBase(lock), data_(init) {}
  Array(std::span<const T> init, RLock lock) : SynchronizedBase(std::move(lock)), data_(init) {}
  explicit Array(detail::EmptyHandle e) : data_(e) {}

  // Unlocked access: hold get_lock() around it when others may write.
  std::size_t size() const noexcept { return data_.size(); }
  bool empty() const noexcept { return data_.empty(); }
  T& operator[](std::size_t i) const { return data_[i]; }
  T* data() const noexcept { return data_.data(); }
  T* begin() const noexcept { return data_.begin(); }
  T* end() const noexcept { return data_.end(); }
  std::span<T> span() const noexcept { return data_.span(); }

  // One access under the lock. get/set throw std::out_of_range for i >= size().
  T get(std::size_t i) const {
    auto g = hold();
    return data_[check(i)];
  }
  void set(std::size_t i, const T& v) const {
    auto g = hold();
    data_[check(i)] = v;
  }
  std::vector<T> to_vector() const {
    auto g = hold();
    return data_.to_vector();
  }

  template <class Archive>
  void save(Archive& ar) const {
    save_lock(ar);
    ar(data_);
  }
  template <class Archive>
  void load(Archive& ar) {
    load_lock(ar);
    ar(data_);
  }

 private:
  std::size_t check(std::size_t i) const {
    if (i >= data_.size()) throw std::out_of_range("mproc::Array index out of range");
    return i;
  }
  RawArray<T> data_;
};

}  // namespace mproc
