// mproc/process.hpp — mproc::Process, Python's multiprocessing.Process for C++.
//
//   void greet(std::string who, int n) { std::printf("hello %s %d\n", who.c_str(), n); }
//
//   mproc::Process p(greet, "bob", 3);           // Process(target=greet, args=("bob", 3))
//   p.start();
//   p.join();                                    // p.exitcode() == 0
//
//   struct Worker : mproc::Process {             // subclassing, run() overridden
//     void run() override { ... }
//   };
//
// The target is anything mproc can name (see Pool): a plain function, a captureless lambda, or
// a function object with a cereal serialize(); its arguments are encoded when the Process is
// constructed, converted to the target's parameter types. Connections and Queues may be
// arguments: their descriptors go to the child (inherited under fork, kept open across the exec
// under spawn). Whatever the target returns is discarded.
//
// Start methods (get_start_method() at start()):
//   fork        the child is a copy of the program at start(); a subclass's run() runs as is.
//   spawn,      the child execs /proc/self/exe and mproc::init runs the target there; the target
//   forkserver  and its arguments arrive over an inherited socket. (forkserver starts Processes
//               as spawn does: the child inherits nothing of the program.) A subclass crosses the
//               exec as Python pickles one: give it a default constructor and a cereal
//               serialize() of its members (Connections and Queues among them are passed on as
//               target arguments are) and register it once, at namespace scope:
//                 MPROC_REGISTER_PROCESS(my::Consumer);
//               The new program rebuilds it, names it as the parent did, and calls run().
//               Starting an unregistered subclass that overrides run() is a ProcessError.
//
// exitcode(): empty while running (or before start), 0 when run() returned, n for exit(n) or
// mproc::exit(n), -N when killed by signal N, 1 when run() threw (the child prints
// "Process <name>:" and the exception's type and message to stderr, as Python prints its
// traceback).
//
// No zombies: a reaper thread (started with the first child) waits on each child's pidfd and
// reaps it when it ends, joined or not, and only the Processes this program started (never
// waitpid(-1): the fork server and pool zygotes are reaped by their owners). At exit the
// program terminates its daemon children and joins the others, as Python does.
//
// Daemons: a daemon child gets SIGTERM when its parent dies (PR_SET_PDEATHSIG: note that Linux
// ties it to the parent *thread* that called start()), and may not start children itself.
//
// Destroying a Process that still runs leaves the child running (as Python); it is still reaped.
// Only the process that started a child may wait for it: join and is_alive in a child made with
// fork() throw ProcessError naming the parent (Python: "can only join a child process").
//
// Thread safety: distinct Processes are independent. On one Process, join, is_alive, exitcode,
// terminate, kill and sentinel may be called concurrently; start and close must not race with
// other calls on it. current_process, parent_process and active_children are thread-safe.
//
// Throws: ProcessError for misuse (start twice, close while running, calls after close, a
// daemon starting children, exec failure); SerializationError for an argument that cannot be
// encoded; std::system_error when fork or a descriptor call fails.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "mproc/errors.hpp"
#include "mproc/process_info.hpp"
#include "mproc/runtime/detail/fd_transfer.hpp"
#include "mproc/serialize/detail/callable.hpp"

namespace mproc {

namespace detail {
struct ProcessState;
}  // namespace detail

class Process {
 public:
  // No target: run() does nothing unless a subclass overrides it.
  Process();

  // Process(target, args...): run() calls target(args...) in the child.
  template <class F, class... Args>
  requires(!std::is_base_of_v<Process, std::remove_cvref_t<F>>) explicit Process(F target,
                                                                                 Args&&... args)
      : Process() {
    using Fn = std::decay_t<F>;
    using Item = detail::apply_item_t<Fn, Args...>;
    static_assert(std::tuple_size_v<Item> == sizeof...(Args),
                  "mproc::Process: the number of arguments does not match the target");
    detail::FdCollector collect(target_fds_);
    detail::encode_callable<Fn, Item, detail::CallShape::kApply>(target_, target, 1);
    detail::WireOutputArchive ar(target_);
    encode_args<Item>(ar, std::index_sequence_for<Args...>{}, args...);
  }

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Movable, started or not (std::vector<mproc::Process> works): the child, its exit code and
  // its place in active_children() go with the object. The moved-from Process is empty:
  // destroying it does nothing to the child, and calls on it throw ProcessError ("moved-from").
  // Moving assigns over a Process that still runs leaves that child running (as destroying it
  // would). A subclass is moved as its Process part; moving must not race with other calls.
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  virtual ~Process();

  // What the child runs. The default calls the target (if any).
  virtual void run();

  // Starts the child. Once only.
  void start();

  // Waits for the child to end. join(timeout) returns whether it ended (Python returns None:
  // check exitcode()); a timeout never raises.
  void join();
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    return join_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  // Started and not yet ended.
  bool is_alive() const;
  // SIGTERM / SIGKILL (through the pidfd: never a recycled pid). Nothing if already ended.
  void terminate();
  void kill();
  // Releases the descriptors. ProcessError while the child runs; most calls raise afterwards.
  void close();

  // The child's pid; 0 before start().
  pid_t pid() const;
  // See the header comment.
  std::optional<int> exitcode() const;
  // "Process-N" by default ("Process-M:N" for the N-th child of Process-M); a subclass's
  // default is its class name instead, "Worker-N" (Python: type(self).__name__ + '-N'). The
  // default is settled by the first name() or by start(): call one of them before sharing the
  // object between threads.
  const std::string& name() const noexcept;
  void name(std::string n) {
    name_ = std::move(n);
    default_name_ = false;
  }
  // Set before start() (ProcessError afterwards). Inherits the creator's daemon flag.
  bool daemon() const noexcept { return daemon_; }
  void daemon(bool on);
  // A descriptor (the child's pidfd) that becomes readable when the child ends; valid until
  // close(). ProcessError before start().
  int sentinel() const;

 private:
  template <class Item, std::size_t... I, class... Args>
  static void encode_args(detail::WireOutputArchive& ar, std::index_sequence<I...>,
                          const Args&... args) {
    (ar(static_cast<const std::tuple_element_t<I, Item>&>(args)), ...);
  }

  bool join_for(std::chrono::nanoseconds timeout);
  void check_not_closed() const;
  void check_parent() const;  // ProcessError in a process that did not start it
  void start_fork();
  void start_spawn();
  [[noreturn]] void child_after_fork(pid_t parent);

  detail::Bytes target_;         // encoded target and arguments (empty: no target)
  std::vector<int> target_fds_;  // descriptors named inside target_
  mutable std::string name_;     // settled by name(): see there
  std::string identity_;         // "N", or "M:N" in Process-M: the default name's suffix
  bool daemon_ = false;
  bool closed_ = false;
  bool moved_from_ = false;
  mutable bool default_name_ = true;  // name_ is still "Process-N": a subclass renames it
  std::shared_ptr<detail::ProcessState> state_;  // set by start()
};

// Python's repr(p): <Worker name='Worker-1' pid=42 parent=41 started daemon>; "initial" before
// start(), "stopped exitcode=N" once reaped; "closed" after close(). Never throws.
std::ostream& operator<<(std::ostream& os, const Process& p);

// The process that started this one, as seen from a child; empty in the main program.
class ParentProcess {
 public:
  ParentProcess(std::string name, pid_t pid) : name_(std::move(name)), pid_(pid) {}
  const std::string& name() const noexcept { return name_; }
  pid_t pid() const noexcept { return pid_; }
  // Whether the parent still runs (it is still this process's parent).
  bool is_alive() const noexcept;

 private:
  std::string name_;
  pid_t pid_;
};

// Python's multiprocessing.parent_process(): empty in the main program.
std::optional<ParentProcess> parent_process();

// Python's active_children(): the Processes started by this process that are still running
// (finished ones are reaped). Pointers stay valid while the Process objects live.
std::vector<Process*> active_children();

// Whether the current process is a daemon Process (current_process().daemon() in Python).
bool current_process_is_daemon() noexcept;

// Python's sys.exit(code) inside a Process: flushes stdout and stderr and ends the process with
// `code` (exitcode() == code). Outside a Process child it is std::exit(code).
[[noreturn]] void exit(int code);

namespace detail {
// A Process subclass that can cross an exec (MPROC_REGISTER_PROCESS): how to save one in the
// parent and rebuild one in the new program.
struct ProcessClass {
  void (*save)(const Process& p, Bytes& out);
  std::unique_ptr<Process> (*load)(std::span<const char> in);
};
// The registry, keyed by the type's mangled name (the same in the parent and the exec'd copy of
// the program). Registration happens during static initialisation; lookups after main starts.
bool register_process_class(const std::type_info& type, ProcessClass c) noexcept;
const ProcessClass* find_process_class(const std::string& type_name) noexcept;

template <class T>
bool register_process_class_of() noexcept {
  static_assert(std::is_base_of_v<Process, T>, "MPROC_REGISTER_PROCESS: not a Process subclass");
  static_assert(std::is_default_constructible_v<T>,
                "MPROC_REGISTER_PROCESS: the subclass needs a default constructor (the new "
                "program builds one, then loads its members)");
  return register_process_class(
      typeid(T), ProcessClass{[](const Process& p, Bytes& out) {
                                WireOutputArchive ar(out);
                                ar(static_cast<const T&>(p));
                              },
                              [](std::span<const char> in) -> std::unique_ptr<Process> {
                                auto t = std::make_unique<T>();
                                WireInputArchive ar(in);
                                ar(*t);
                                return t;
                              }});
}
// Runs an encoded target (Process::run's default, and a spawned child's entry).
void run_target(std::span<const char> payload);
// Called by mproc::init first: in a program exec'd to be a spawned Process, runs it and never
// returns; otherwise returns at once.
void enter_if_spawned_process(int argc, char** argv);
}  // namespace detail

}  // namespace mproc

#define MPROC_DETAIL_CONCAT2(a, b) a##b
#define MPROC_DETAIL_CONCAT(a, b) MPROC_DETAIL_CONCAT2(a, b)
// Lets the Process subclass `Type` start under spawn and forkserver (see the header comment).
// Use once per type, at namespace scope, in any one source file of the program.
#define MPROC_REGISTER_PROCESS(Type)                                                       \
  [[maybe_unused]] static const bool MPROC_DETAIL_CONCAT(mproc_process_class_, __LINE__) = \
      ::mproc::detail::register_process_class_of<Type>()
