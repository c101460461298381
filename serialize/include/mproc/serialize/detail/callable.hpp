// mproc/serialize/detail/callable.hpp — how a callable is named on the wire, never addressed.
//
// A task frame names its callable by two things that hold in every process running the same
// executable, whatever ASLR did to it (forked, exec'd, or an MPI rank on another host):
//
//  * the invoker: a function template instantiated for (callable type, item type, call shape)
//    that decodes the arguments, calls, and encodes the result. Each instantiation registers
//    itself at static-initialisation time under the hash of its mangled type name, so a worker
//    finds it by name. An unknown name is a SerializationError, never a jump.
//  * for a plain function, its module (the executable, or a shared library by path) and its
//    offset from that module's load base. The receiving side accepts the offset only if the
//    module's symbol table (stripped: .dynsym, .eh_frame_hdr) lists a function start there.
//
// Captureless lambdas and empty function objects are rebuilt by default construction; function
// objects with state are sent with cereal (they need `serialize()` and a default constructor).
// A capturing lambda does not compile (see the static_asserts below).
//
// Thread safety: registration happens during static initialisation; lookups are thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "mproc/serialize/detail/wire_archive.hpp"

namespace mproc::detail {

// What the invoker sees when it runs in the worker.
// Items that encode to no bytes at all (a nullary call's empty tuple) cannot be bounded by the
// payload's size; a chunk holds at most this many of them.
inline constexpr std::uint32_t kMaxEmptyItems = 1u << 16;

struct InvokeContext {
  WireInputArchive& in;  // positioned at the invoker's own data (function object, items)
  Bytes& out;            // the result payload: one encoded result per item, appended
  void* target;          // the resolved plain function, or nullptr for function objects
  std::uint32_t count;   // number of items in the chunk
  std::size_t max_out;   // largest result payload allowed (0: no limit)
};
using InvokerFn = void (*)(InvokeContext&);

// Registers an invoker under the 64-bit hash of `mangled_name`; returns the key. Two distinct
// invokers with the same hash make the key ambiguous: lookups of it then fail loudly.
std::uint64_t register_invoker(const char* mangled_name, InvokerFn fn) noexcept;
// Throws SerializationError when no (or an ambiguous) invoker has this key.
InvokerFn find_invoker(std::uint64_t key);

// Loads and sorts the executable's function table now, in a process about to fork workers, so
// that each worker inherits it instead of reading the ELF file again (which dominates a
// short-lived worker's user time with maxtasksperchild).
void warm_callable_tables() noexcept;

// Writes the location of a plain function (module, offset). Throws SerializationError if the
// address lies in no loaded module.
void encode_function_location(Bytes& out, const void* fn);
// Reads a location written by encode_function_location and returns the function's address in
// this process, after checking that the module has a function starting there (callable.cpp
// says how it knows). Throws SerializationError otherwise.
void* decode_function_location(WireInputArchive& in);

// How the items of a chunk are passed to the callable.
enum class CallShape : std::uint8_t {
  kApply,  // item is a tuple-like; call std::apply(f, item)  (apply, starmap)
  kMap,    // item is one argument; call f(item)              (map, imap)
};

// ---- callable classification -------------------------------------------------------------

template <class F>
inline constexpr bool is_function_pointer_v =
    std::is_pointer_v<F>&& std::is_function_v<std::remove_pointer_t<F>>;

template <class F>
inline constexpr bool is_stateless_object_v =
    std::is_class_v<F>&& std::is_empty_v<F>&& std::is_default_constructible_v<F>;

template <class F>
inline constexpr bool is_serializable_object_v =
    std::is_class_v<F> && !std::is_empty_v<F> && std::is_default_constructible_v<F> &&
    is_wire_serializable_v<F>;

template <class F>
inline constexpr bool is_sendable_callable_v =
    is_function_pointer_v<F> || is_stateless_object_v<F> || is_serializable_object_v<F>;

template <class F>
constexpr void check_sendable_callable() {
  static_assert(!std::is_member_function_pointer_v<F>,
                "mproc: a member function pointer cannot be sent to a worker; wrap the call in a "
                "plain function or a captureless lambda that takes the object as an argument.");
  static_assert(
      is_sendable_callable_v<F>,
      "mproc: this callable cannot be sent to a worker process. Capturing lambdas (and function "
      "objects without a serialize() member) cannot cross a process boundary: pass what the "
      "lambda captures as task arguments instead, use a captureless lambda or a plain function, "
      "or give your function object a default constructor and a cereal serialize() member.");
}

// ---- parameter deduction -------------------------------------------------------------------
// Arguments are converted to the callable's own parameter types before they are encoded (so
// apply(f, "text") for f(std::string) sends a std::string). Generic lambdas fall back to the
// decayed argument types.

template <class T>
struct signature_of {
  static constexpr bool known = false;
};
template <class R, class... P>
struct signature_of<R (*)(P...)> {
  static constexpr bool known = true;
  using params = std::tuple<std::decay_t<P>...>;
};
template <class R, class... P>
struct signature_of<R (*)(P...) noexcept> : signature_of<R (*)(P...)> {};
template <class C, class R, class... P>
struct signature_of<R (C::*)(P...) const> : signature_of<R (*)(P...)> {};
template <class C, class R, class... P>
struct signature_of<R (C::*)(P...) const noexcept> : signature_of<R (*)(P...)> {};
template <class C, class R, class... P>
struct signature_of<R (C::*)(P...)> : signature_of<R (*)(P...)> {};
template <class C, class R, class... P>
struct signature_of<R (C::*)(P...) noexcept> : signature_of<R (*)(P...)> {};

template <class F, class = void>
struct callable_signature : signature_of<F> {};
template <class F>
struct callable_signature<F, std::void_t<decltype(&F::operator())>>
    : signature_of<decltype(&F::operator())> {};

template <class F, class... Args>
struct apply_item {
  using type = std::tuple<std::decay_t<Args>...>;
};
template <class F, class... Args>
requires(callable_signature<F>::known&& std::tuple_size_v<typename callable_signature<F>::params> ==
         sizeof...(Args)) struct apply_item<F, Args...> {
  using type = typename callable_signature<F>::params;
};
// The tuple that apply(f, args...) sends.
template <class F, class... Args>
using apply_item_t = typename apply_item<F, Args...>::type;

// ---- the invoker ---------------------------------------------------------------------------

// Whether std::apply(f, tuple) compiles (std::is_invocable for a tuple of arguments).
template <class F, class Tuple, std::size_t... I>
constexpr bool applicable_impl(std::index_sequence<I...>) {
  return std::is_invocable_v<F, decltype(std::get<I>(std::declval<Tuple>()))...>;
}
template <class F, class Tuple>
inline constexpr bool applicable_v = applicable_impl<F, Tuple>(
    std::make_index_sequence<std::tuple_size_v<std::remove_reference_t<Tuple>>>());

template <class F, class Item, CallShape S>
struct call_result;
template <class F, class Item>
struct call_result<F, Item, CallShape::kMap> {
  using type = std::decay_t<std::invoke_result_t<F&, Item&>>;
};
template <class F, class Item>
struct call_result<F, Item, CallShape::kApply> {
  using type = std::decay_t<decltype(std::apply(std::declval<F&>(), std::declval<Item&>()))>;
};
template <class F, class Item, CallShape S>
using call_result_t = typename call_result<F, Item, S>::type;

template <class F, class Item, CallShape S>
struct Invoker {
  using Result = call_result_t<F, Item, S>;

  static void run(InvokeContext& ctx) {
    if constexpr (is_function_pointer_v<F>) {
      if (ctx.target == nullptr) throw SerializationError("corrupt task: function missing");
      F fn = reinterpret_cast<F>(ctx.target);
      run_with(fn, ctx);
    } else if constexpr (is_stateless_object_v<F>) {
      F fn{};
      run_with(fn, ctx);
    } else {
      F fn{};
      decode(ctx, fn);
      run_with(fn, ctx);
    }
  }

  template <class Fn>
  static void run_with(Fn& fn, InvokeContext& ctx) {
    // The count comes off the wire: it may not promise more items than bytes follow (items
    // that encode to nothing excepted, within reason), nor make the reply outgrow its cap.
    if (ctx.count > ctx.in.remaining() && ctx.count > kMaxEmptyItems) {
      throw SerializationError("corrupt task: " + std::to_string(ctx.count) + " items in " +
                               std::to_string(ctx.in.remaining()) + " bytes");
    }
    if constexpr (S == CallShape::kMap && std::is_arithmetic_v<Item> &&
                  (std::is_void_v<Result> || std::is_arithmetic_v<Result>)) {
      run_bulk(fn, ctx);
      return;
    }
    WireOutputArchive out(ctx.out);
    const std::size_t start = ctx.out.size();  // earlier replies may share the buffer
    if constexpr (std::is_arithmetic_v<Result>) {
      const std::size_t n = std::min<std::size_t>(ctx.count, ctx.in.remaining() + 1);
      ctx.out.reserve(ctx.out.size() + n * sizeof(Result));
    }
    Item item{};
    for (std::uint32_t i = 0; i < ctx.count; ++i) {
      // The item is decoded afresh for every call, so it is moved into the call: a by-value
      // parameter (a 1 MiB vector) takes its buffer instead of a copy. The next decode assigns
      // every field of the moved-from item.
      decode(ctx, item);
      if constexpr (std::is_void_v<Result>) {
        call(fn, item);
      } else {
        out(call(fn, item));
        if (ctx.max_out != 0 && ctx.out.size() - start > ctx.max_out) {
          throw_results_exceed(ctx.max_out);
        }
      }
    }
  }

  // map over numbers: cereal's bytes of a run of arithmetic values are the values themselves,
  // so the chunk is read in place and the results written straight into the reply (one copy
  // each way, no per-item append: a map of a million ints spent a fifth of its time here).
  template <class Fn>
  static void run_bulk(Fn& fn, InvokeContext& ctx) {
    const std::span<const char> items = ctx.in.take(std::size_t{ctx.count} * sizeof(Item));
    [[maybe_unused]] char* results = nullptr;
    if constexpr (!std::is_void_v<Result>) {
      const std::size_t bytes = std::size_t{ctx.count} * sizeof(Result);
      if (ctx.max_out != 0 && bytes > ctx.max_out) throw_results_exceed(ctx.max_out);
      const std::size_t start = ctx.out.size();  // earlier replies may share the buffer
      ctx.out.resize(start + bytes);
      results = ctx.out.data() + start;
    }
    for (std::uint32_t i = 0; i < ctx.count; ++i) {
      Item x;
      std::memcpy(&x, items.data() + std::size_t{i} * sizeof(Item), sizeof x);
      if constexpr (std::is_void_v<Result>) {
        std::invoke(fn, x);
      } else {
        const Result r = std::invoke(fn, x);
        std::memcpy(results + std::size_t{i} * sizeof(Result), &r, sizeof r);
      }
    }
  }

  [[noreturn]] static void throw_results_exceed(std::size_t max_out) {
    throw SerializationError("the task's results exceed max_frame_bytes (" +
                             std::to_string(max_out) + " bytes)");
  }

  // Whatever goes wrong while decoding arguments is a corrupt task, whichever type cereal or a
  // user's serialize() threw.
  template <class T>
  static void decode(InvokeContext& ctx, T& value) {
    try {
      ctx.in(value);
    } catch (const SerializationError&) {
      throw;
    } catch (const std::exception& e) {
      throw SerializationError(std::string("corrupt task argument: ") + e.what());
    }
  }

  // Moves the item in when the callable accepts an rvalue (by value or const&); one that takes
  // its argument by non-const reference gets the item itself, as before.
  template <class Fn>
  static decltype(auto) call(Fn& fn, Item& item) {
    if constexpr (S == CallShape::kApply) {
      if constexpr (applicable_v<Fn&, Item&&>) {
        return std::apply(fn, std::move(item));
      } else {
        return std::apply(fn, item);
      }
    } else {
      if constexpr (std::is_invocable_v<Fn&, Item&&>) {
        return std::invoke(fn, std::move(item));
      } else {
        return std::invoke(fn, item);
      }
    }
  }

  // Evaluated once per instantiation at static-initialisation time in every process.
  static inline const std::uint64_t key = register_invoker(typeid(Invoker).name(), &Invoker::run);
};

// Checks the types of a call at compile time with messages a user can act on.
template <class F, class Item, CallShape S>
constexpr void check_call_types() {
  check_sendable_callable<F>();
  static_assert(is_wire_serializable_v<Item>,
                "mproc: a task argument type cannot be serialized. Give it a cereal serialize() "
                "member (template <class A> void serialize(A& ar) { ar(field1, field2); }) or "
                "pass a type cereal knows (arithmetic, std::string, std containers, optional, "
                "variant, tuple, ...).");
  using R = call_result_t<F, Item, S>;
  static_assert(std::is_void_v<R> || is_wire_serializable_v<R>,
                "mproc: the task's result type cannot be serialized. Give it a cereal serialize() "
                "member or return a type cereal knows.");
  static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                "mproc: a task's result type must be default constructible to be decoded.");
}

// Writes the callable part of a task payload: invoker key, target, item count, and a stateful
// function object's state. The items follow, written by the caller. Returns the offset of the
// 4-byte count in `out`, for a caller that learns the count only after writing the items.
template <class F, class Item, CallShape S>
std::size_t encode_callable(Bytes& out, const F& fn, std::uint32_t count) {
  check_call_types<F, Item, S>();
  WireOutputArchive ar(out);
  ar(Invoker<F, Item, S>::key);
  if constexpr (is_function_pointer_v<F>) {
    ar(std::uint8_t{1});
    encode_function_location(out, reinterpret_cast<const void*>(fn));
  } else {
    ar(std::uint8_t{0});
  }
  const std::size_t count_at = out.size();
  ar(count);
  if constexpr (is_serializable_object_v<F>) ar(fn);
  return count_at;
}

// Worker side: reads the callable part, resolves it, and runs the chunk into `out`.
// Throws SerializationError for an unknown invoker or function; whatever the task throws.
void invoke_payload(std::span<const char> payload, Bytes& out, std::size_t max_out = 0);

}  // namespace mproc::detail
