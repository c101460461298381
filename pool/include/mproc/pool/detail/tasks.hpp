// mproc/pool/detail/tasks.hpp — the typed tasks behind apply, map and imap: how a chunk is
// encoded on the caller's thread and how its results are decoded on the I/O thread.
// Internal (namespace detail).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <ranges>
#include <variant>
#include <vector>

#include "mproc/pool/async_result.hpp"
#include "mproc/pool/detail/engine.hpp"
#include "mproc/pool/detail/frame_buffers.hpp"
#include "mproc/progress.hpp"
#include "mproc/serialize/detail/callable.hpp"
#include "mproc/serialize/detail/frame.hpp"

namespace mproc::detail {

// Encodes one chunk of `count` items from `it` into a task's frame.
template <class Fn, class Item, CallShape S, class It>
void encode_chunk(Task& task, const Fn& fn, It& it, std::uint32_t count, std::size_t cap) {
  Bytes& f = task.frame;
  reserve_frame(f, 64 + count * (std::is_trivially_copyable_v<Item> ? sizeof(Item) : 16));
  const std::size_t at = begin_frame(f);
  encode_callable<Fn, Item, S>(f, fn, count);
  WireOutputArchive ar(f);
  if constexpr (std::is_arithmetic_v<Item> && std::contiguous_iterator<It>) {
    // cereal's binary layout of a run of arithmetic values is their bytes: one copy.
    ar.saveBinary(std::to_address(it), std::size_t{count} * sizeof(Item));
    it += count;
  } else {
    for (std::uint32_t i = 0; i < count; ++i, ++it) {
      const Item& item = *it;
      ar(item);
    }
  }
  finish_frame(f, at, FrameKind::kTask, task.id, 0, cap);
}

// A cheap guess of an argument's encoded size, to size a frame once instead of growing it by
// doubling (a 1 MB argument would otherwise be copied about twice more on the way).
template <class T>
std::size_t wire_size_hint(const T& v) {
  if constexpr (std::is_arithmetic_v<T>) {
    return sizeof(T);
  } else if constexpr (std::ranges::contiguous_range<T> && std::ranges::sized_range<T>) {
    using V = std::ranges::range_value_t<T>;
    if constexpr (std::is_trivially_copyable_v<V>) return 8 + std::ranges::size(v) * sizeof(V);
    return 16;
  } else {
    return 16;
  }
}

// apply(f, args...) when the arguments already have the types f takes: encoded straight from
// the caller's objects, without first copying them into the item tuple. The bytes are those of
// the tuple (cereal writes a tuple as its elements in order).
template <class Fn, class Item, class... Args>
void encode_apply_args(Task& task, const Fn& fn, std::size_t cap, const Args&... args) {
  Bytes& f = task.frame;
  reserve_frame(f, 64 + (std::size_t{0} + ... + wire_size_hint(args)));
  const std::size_t at = begin_frame(f);
  encode_callable<Fn, Item, CallShape::kApply>(f, fn, 1);
  WireOutputArchive ar(f);
  (ar(args), ...);
  finish_frame(f, at, FrameKind::kTask, task.id, 0, cap);
}

// Encodes up to `max` items from [it, end) into a task's frame; returns how many (0: none left).
template <class Fn, class Item, CallShape S, class It, class End>
std::uint32_t encode_chunk_until(Task& task, const Fn& fn, It& it, const End& end,
                                 std::uint32_t max, std::size_t cap) {
  Bytes& f = task.frame;
  const std::size_t at = begin_frame(f);
  const std::size_t count_at = encode_callable<Fn, Item, S>(f, fn, 0);
  WireOutputArchive ar(f);
  std::uint32_t count = 0;
  for (; count < max && it != end; ++count, ++it) {
    const Item& item = *it;
    ar(item);
  }
  std::memcpy(f.data() + count_at, &count, sizeof count);
  finish_frame(f, at, FrameKind::kTask, task.id, 0, cap);
  return count;
}

// Decodes `count` results into `out[0..count)`; throws on a corrupt or short payload.
template <class R>
void decode_results(std::span<const char> payload, R* out, std::size_t count) {
  WireInputArchive in(payload);
  if constexpr (std::is_arithmetic_v<R>) {
    in.loadBinary(out, count * sizeof(R));
  } else {
    for (std::size_t i = 0; i < count; ++i) in(out[i]);
  }
  if (in.remaining() != 0) throw SerializationError("corrupt result: trailing bytes");
}

// The same into v[offset, offset + count): std::vector<bool> has no data() to write through.
template <class R>
void decode_results(std::span<const char> payload, std::vector<R>& v, std::size_t offset,
                    std::size_t count) {
  if constexpr (std::is_same_v<R, bool>) {
    WireInputArchive in(payload);
    for (std::size_t i = 0; i < count; ++i) {
      bool b = false;
      in(b);
      v[offset + i] = b;
    }
    if (in.remaining() != 0) throw SerializationError("corrupt result: trailing bytes");
  } else {
    decode_results(payload, v.data() + offset, count);
  }
}

inline std::exception_ptr current_as_serialization_error() noexcept {
  try {
    throw;
  } catch (const SerializationError&) {
    return std::current_exception();
  } catch (const std::exception& e) {
    return std::make_exception_ptr(
        SerializationError(std::string("cannot decode the task's result: ") + e.what()));
  } catch (...) {
    return std::make_exception_ptr(SerializationError("cannot decode the task's result"));
  }
}

// apply / apply_async: one call, one result.
template <class R>
class ApplyTask final : public Task {
 public:
  explicit ApplyTask(std::shared_ptr<ResultState<R>> s) : state_(std::move(s)) {}
  void on_ok(std::span<const char> payload) noexcept override {
    if constexpr (std::is_void_v<R>) {
      if (!payload.empty()) {
        state_->fail(
            std::make_exception_ptr(SerializationError("corrupt result: unexpected bytes")));
        return;
      }
      state_->set_value();
    } else {
      try {
        R value{};
        decode_results(payload, &value, 1);
        state_->set_value(std::move(value));
      } catch (...) {
        state_->fail(current_as_serialization_error());
      }
    }
  }
  void on_error(std::exception_ptr e) noexcept override { state_->fail(std::move(e)); }
  void on_start() noexcept override { state_->mark_started(); }

 private:
  std::shared_ptr<ResultState<R>> state_;
};

// map / starmap (async or not): chunks decode into one vector; the first failure completes it.
template <class R>
struct MapState {
  using Out = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;
  MapState(std::size_t n, std::size_t chunks, std::shared_ptr<ResultState<Out>> r,
           std::shared_ptr<ProgressBar> bar = nullptr)
      : remaining(chunks), result(std::move(r)), progress(std::move(bar)) {
    if constexpr (!std::is_void_v<R>) values.resize(n);
  }
  std::conditional_t<std::is_void_v<R>, int, std::vector<R>> values;
  std::size_t remaining;  // I/O thread only
  std::shared_ptr<ResultState<Out>> result;
  std::shared_ptr<ProgressBar> progress;

  void chunk_done(std::size_t items) noexcept {
    if (progress) progress->add(items);
    if (--remaining != 0) return;
    if constexpr (std::is_void_v<R>) {
      result->set_value();
    } else {
      result->set_value(std::move(values));
    }
  }
};

template <class R>
class MapChunkTask final : public Task {
 public:
  MapChunkTask(std::shared_ptr<MapState<R>> s, std::size_t offset, std::size_t count)
      : state_(std::move(s)), offset_(offset), count_(count) {}
  void on_ok(std::span<const char> payload) noexcept override {
    if constexpr (!std::is_void_v<R>) {
      try {
        decode_results(payload, state_->values, offset_, count_);
      } catch (...) {
        state_->result->fail(current_as_serialization_error());
      }
    }
    state_->chunk_done(count_);
  }
  void on_error(std::exception_ptr e) noexcept override {
    state_->result->fail(std::move(e));
    state_->chunk_done(count_);
  }
  void on_start() noexcept override { state_->result->mark_started(); }

 private:
  std::shared_ptr<MapState<R>> state_;
  std::size_t offset_, count_;
};

// imap / imap_unordered: completed chunks wait here until the consumer takes them.
template <class R>
class ImapState {
 public:
  using Outcome = std::variant<std::vector<R>, std::exception_ptr>;

  void deliver(std::size_t chunk, Outcome o) {
    {
      std::lock_guard lock(mu_);
      done_.emplace(chunk, std::move(o));
      if (!waiting_) return;
    }
    cv_.notify_one();
  }

  // Blocks for chunk `idx` (ordered) or any chunk (idx == npos). Returns (chunk, outcome).
  std::pair<std::size_t, Outcome> take(std::size_t idx) {
    std::unique_lock lock(mu_);
    waiting_ = true;
    cv_.wait(lock, [&] { return idx == npos ? !done_.empty() : done_.count(idx) != 0; });
    waiting_ = false;
    auto it = idx == npos ? done_.begin() : done_.find(idx);
    std::pair<std::size_t, Outcome> r(it->first, std::move(it->second));
    done_.erase(it);
    return r;
  }

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool waiting_ = false;
  std::map<std::size_t, Outcome> done_;
};

template <class R>
class ImapChunkTask final : public Task {
 public:
  ImapChunkTask(std::shared_ptr<ImapState<R>> s, std::size_t chunk)
      : state_(std::move(s)), chunk_(chunk) {}
  void set_count(std::size_t n) noexcept { count_ = n; }
  void on_ok(std::span<const char> payload) noexcept override {
    try {
      std::vector<R> v(count_);
      decode_results(payload, v, 0, count_);
      state_->deliver(chunk_, std::move(v));
    } catch (...) {
      state_->deliver(chunk_, current_as_serialization_error());
    }
  }
  void on_error(std::exception_ptr e) noexcept override { state_->deliver(chunk_, std::move(e)); }

 private:
  std::shared_ptr<ImapState<R>> state_;
  std::size_t chunk_, count_ = 0;
};

}  // namespace mproc::detail
