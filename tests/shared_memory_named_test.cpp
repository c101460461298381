// Named shared memory (SharedMemory, SharedSpan, ShareableList, SharedMemoryManager) across
// Processes, pool workers and a separate program; the tracker after a SIGKILL. Runs under
// every start method (MPROC_START_METHOD, see tests/CMakeLists.txt).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mproc/mproc.hpp>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "fork_children.hpp"
#include "test_support.hpp"

extern char** environ;

using namespace std::chrono_literals;

namespace {

// ---- helpers --------------------------------------------------------------------------------

bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

// A name no other test (nor a parallel ctest run of this binary) uses.
std::string unique_name(const char* what) {
  static std::atomic<int> serial{0};
  return "mproc_test_" + std::to_string(::getpid()) + "_" + what + "_" +
         std::to_string(serial.fetch_add(1));
}

void do_nothing() {}

class NamedShm : public mproc_test::LeakCheck {
 protected:
  static void SetUpTestSuite() {
    // Under the sanitizers a child forked from this threaded process may deadlock in the
    // sanitizer's allocator (see manager_test.cpp): children come from the fork server there.
    if (mproc_test::kSanitized && !std::getenv("MPROC_START_METHOD")) {
      mproc::set_start_method("forkserver");
    }
    // Descriptors kept for the program's life, opened before the leak checks count them: the
    // tracker's socket, and the reaper's epoll set (started by the first Process).
    mproc::detail::shm_tracker_start();
    mproc::Process p(do_nothing);
    p.start();
    p.join();
  }

  void TearDown() override {
    for (const auto& n : names_) ::shm_unlink(("/" + n).c_str());  // whatever a failure left
    LeakCheck::TearDown();
  }
  std::string name(const char* what) {
    names_.push_back(unique_name(what));
    return names_.back();
  }
  // A block named elsewhere: removed at the end of the test if the test did not.
  void adopt(const std::string& n) { names_.push_back(n); }

 private:
  std::vector<std::string> names_;
};

struct Helper {
  pid_t pid = -1;
  int out = -1;  // its stdout
};

Helper start_program(const char* program, std::vector<std::string> args) {
  args.insert(args.begin(), program);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  Helper h;
  const int rc = ::posix_spawnp(&h.pid, program, &fa, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc != 0) {
    ::close(p[0]);
    throw std::runtime_error(std::string("posix_spawn ") + program);
  }
  h.out = p[0];
  return h;
}

Helper start_helper(std::vector<std::string> args) {
  return start_program(MPROC_SHM_CLIENT, std::move(args));
}

// One line of the helper's stdout (without the newline); "" at EOF.
std::string read_line(int fd) {
  std::string line;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

// Runs the helper to its end: its exit status and its first line.
std::pair<int, std::string> run_helper_program(const char* program, std::vector<std::string> args) {
  Helper h = start_program(program, std::move(args));
  std::string line = read_line(h.out);
  ::close(h.out);
  int status = 0;
  ::waitpid(h.pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), line};
}

std::pair<int, std::string> run_helper(std::vector<std::string> args) {
  return run_helper_program(MPROC_SHM_CLIENT, std::move(args));
}

template <class F>
void expect_shm_error(F&& fn, int code, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected SharedMemoryError(" << code << "), nothing was thrown";
  } catch (const mproc::SharedMemoryError& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// ---- task and Process targets -----------------------------------------------------------------

void double_word0_into_word1(mproc::SharedMemory shm) {
  auto w = shm.as<std::uint64_t>();
  w[1] = w[0] * 2;
}

void attach_by_name_and_write(std::string name, std::uint64_t value) {
  auto shm = mproc::SharedMemory::attach(name);
  shm.as<std::uint64_t>()[2] = value;
}

std::uint64_t write_slot(mproc::SharedMemory shm, std::size_t i, std::uint64_t v) {
  auto w = shm.as<std::uint64_t>();
  w[i] = v;
  return w[0];
}

std::uint64_t add_by_name(std::string name, std::size_t i) {
  auto shm = mproc::SharedMemory::attach(name);
  auto w = shm.as<std::uint64_t>();
  w[i] += 1000;
  return w[i];
}

// A block made in the worker and handed back (untracked: an exec'd worker's own tracker would
// unlink a tracked one when the worker ends; see named_shared_memory.hpp).
mproc::SharedMemory make_block_in_worker(std::uint64_t value) {
  auto shm = mproc::SharedMemory::create(4096, {}, /*track=*/false);
  shm.as<std::uint64_t>()[0] = value;
  return shm;
}

// A tracked block made in a worker and left there: its tracker unlinks it when the worker ends.
std::string leave_tracked_block_in_worker(int) {
  return mproc::SharedMemory::create(4096).name();
}

void leave_tracked_block_in_process(std::string name) {
  mproc::SharedMemory::create(4096, name);
}

double sum_slice(mproc::SharedSpan<const double> xs) {
  return std::accumulate(xs.begin(), xs.end(), 0.0);
}

void scale_slice(mproc::SharedSpan<double> xs) {
  for (double& x : xs) x *= 2;
}

// Whether this worker still had the mapping from its previous task (a per-task mapping would
// be gone with the previous task's argument, and `previous` with it).
std::pair<int, bool> mapped_before(mproc::SharedSpan<const double> xs) {
  static std::weak_ptr<mproc::detail::ShmMapping> previous;
  const auto now = xs.mapping_ptr();
  const bool reused = previous.lock() == now;
  previous = now;
  return {static_cast<int>(::getpid()), reused};
}

double count_and_sum(mproc::SharedSpan<const double> xs, mproc::Value<int> ran) {
  ran.get_obj() += 1;
  return std::accumulate(xs.begin(), xs.end(), 0.0);
}

long long sum_list(mproc::ShareableList<long long> l) {
  long long s = 0;
  for (long long x : l.to_vector()) s += x;
  l.set(0, s);
  return s;
}

void rewrite_lists(mproc::ShareableList<int> ints, mproc::ShareableList<double> doubles,
                   mproc::ShareableList<bool> bools, mproc::ShareableList<std::string> strings,
                   mproc::ShareableList<std::uint8_t> bytes) {
  ints.set(0, ints.get(0) + 1);
  doubles.set(1, doubles.get(1) * 2);
  bools.set(0, !bools.get(0));
  strings.set(1, strings.get(0) + "!");
  bytes.set(2, 255);
}

}  // namespace

// ---- SharedMemory ---------------------------------------------------------------------------

TEST_F(NamedShm, CreateHereWriteInAProcessReadHere) {
  const std::string n = name("proc");
  auto shm = mproc::SharedMemory::create(4096, n);
  EXPECT_EQ(shm.name(), n);
  EXPECT_EQ(shm.size(), 4096u);
  EXPECT_TRUE(shm_exists(n));
  auto w = shm.as<std::uint64_t>();
  ASSERT_EQ(w.size(), 512u);
  EXPECT_EQ(w[1], 0u);  // zero-filled
  w[0] = 21;

  mproc::Process by_handle(double_word0_into_word1, shm);  // the handle travels by name
  by_handle.start();
  by_handle.join();
  EXPECT_EQ(by_handle.exitcode(), 0);
  EXPECT_EQ(w[1], 42u);

  mproc::Process by_name(attach_by_name_and_write, n, std::uint64_t{77});
  by_name.start();
  by_name.join();
  EXPECT_EQ(by_name.exitcode(), 0);
  EXPECT_EQ(w[2], 77u);
  shm.close();
  EXPECT_TRUE(shm.closed());
  shm.unlink();  // allowed after close, as in Python
  EXPECT_FALSE(shm_exists(n));
}

TEST_F(NamedShm, PoolTasksWriteThroughHandlesAndNames) {
  const std::string n = name("pool");
  auto shm = mproc::SharedMemory::create(4096, n);
  auto w = shm.as<std::uint64_t>();
  w[0] = 5;
  {
    mproc::Pool pool(2);
    std::vector<mproc::AsyncResult<std::uint64_t>> rs;
    for (std::size_t i = 1; i <= 16; ++i) rs.push_back(pool.apply_async(write_slot, shm, i, i * i));
    for (auto& r : rs) EXPECT_EQ(r.get(), 5u);  // each task read what this process wrote
    std::vector<std::pair<std::string, std::size_t>> by_name;
    for (std::size_t i = 1; i <= 16; ++i) by_name.emplace_back(n, i);
    const auto after = pool.starmap(add_by_name, by_name);
    for (std::size_t i = 1; i <= 16; ++i) EXPECT_EQ(after[i - 1], i * i + 1000);
  }
  for (std::size_t i = 1; i <= 16; ++i) EXPECT_EQ(w[i], i * i + 1000) << i;
  shm.unlink();
}

TEST_F(NamedShm, ABlockMadeInATaskComesBackAsAResult) {
  mproc::Pool pool(1);
  auto shm = pool.apply(make_block_in_worker, std::uint64_t{99});
  ASSERT_FALSE(shm.name().empty());
  adopt(shm.name());
  EXPECT_EQ(shm.as<std::uint64_t>()[0], 99u);
  auto again = mproc::SharedMemory::attach(shm.name());  // still there by name
  EXPECT_EQ(again.size(), 4096u);
  shm.unlink();
  EXPECT_FALSE(shm_exists(shm.name()));
}

TEST_F(NamedShm, AnotherProgramAttachesByName) {
  const std::string n = name("prog");
  auto shm = mproc::SharedMemory::create(64, n);
  shm.as<std::uint64_t>()[0] = 1234;
  const auto [code, line] = run_helper({"attach", n});
  EXPECT_EQ(code, 0) << line;
  EXPECT_EQ(line, "read=1234");
  EXPECT_EQ(shm.as<std::uint64_t>()[1], 1235u);
  shm.unlink();
  const auto [gone, msg] = run_helper({"attach", n});
  EXPECT_EQ(gone, 3) << msg;  // ENOENT, reported as an error, not a crash
}

// Python's own SharedMemory(name=...) reads what this process wrote and writes back (skipped
// without python3). Python 3.12 and older register even an attached block with their resource
// tracker, which would unlink it when the script ends: the script unregisters it.
TEST_F(NamedShm, PythonAttachesByName) {
  if (std::system("python3 -c 'from multiprocessing import shared_memory' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with multiprocessing.shared_memory is not available";
  }
  const std::string n = name("python");
  auto shm = mproc::SharedMemory::create(4096, n);
  auto w = shm.as<std::uint64_t>();
  w[0] = 4242;
  const std::string script =
      "import struct\n"
      "from multiprocessing import shared_memory, resource_tracker\n"
      "s = shared_memory.SharedMemory(name='" +
      n +
      "')\n"
      "try:\n"
      "    resource_tracker.unregister(s._name, 'shared_memory')\n"
      "except Exception:\n"
      "    pass\n"
      "v = struct.unpack_from('Q', s.buf, 0)[0]\n"
      "struct.pack_into('Q', s.buf, 8, v * 2)\n"
      "print(v, s.size)\n"
      "s.close()\n";
  const auto [code, line] = run_helper_program("python3", {"-c", script});
  EXPECT_EQ(code, 0) << line;
  EXPECT_EQ(line, "4242 4096");
  EXPECT_EQ(w[1], 8484u);
  EXPECT_TRUE(shm_exists(n));
  shm.unlink();
}

TEST_F(NamedShm, UnlinkThenAttachIsAClearError) {
  const std::string n = name("unlink");
  auto shm = mproc::SharedMemory::create(100, n);
  expect_shm_error([&] { mproc::SharedMemory::create(100, n); }, EEXIST, "already exists");
  shm.unlink();
  expect_shm_error([&] { mproc::SharedMemory::attach(n); }, ENOENT,
                   "no shared memory block named '" + n + "'");
  expect_shm_error([&] { shm.unlink(); }, ENOENT, "already unlinked");
  // The mapping outlives the name.
  shm.buf()[99] = std::byte{7};
  EXPECT_EQ(shm.buf()[99], std::byte{7});
  shm.close();
  expect_shm_error([&] { (void)shm.buf(); }, EBADF, "closed");
  const mproc::SharedMemory empty;
  expect_shm_error([&] { (void)empty.buf(); }, EBADF, "empty");
}

TEST_F(NamedShm, SizesAndNamesAreChecked) {
  const std::string n = name("size");
  auto shm = mproc::SharedMemory::create(4096, n);
  // More than the block has: an error, never a mapping whose tail would SIGBUS.
  expect_shm_error([&] { mproc::SharedMemory::attach(n, 8192); }, EINVAL, "has 4096 bytes");
  expect_shm_error([&] { mproc::SharedMemory(n, false, 4097); }, EINVAL, "4097 were asked for");
  auto whole = mproc::SharedMemory::attach(n);
  EXPECT_EQ(whole.size(), 4096u);
  EXPECT_EQ(mproc::SharedMemory::attach("/" + n, 100).name(), n);  // a leading '/' is optional
  expect_shm_error([] { mproc::SharedMemory::create(0); }, EINVAL, "size > 0");
  expect_shm_error([] { mproc::SharedMemory::attach("a/b"); }, EINVAL, "not a shared memory name");
  expect_shm_error([] { mproc::SharedMemory::attach(""); }, EINVAL, "not a shared memory name");
  auto random = mproc::SharedMemory::create(10);
  EXPECT_EQ(random.name().rfind("mproc_", 0), 0u);
  EXPECT_TRUE(shm_exists(random.name()));
  random.unlink();
  shm.unlink();
}

TEST_F(NamedShm, AHandleToABlockThatShrankIsRefusedInTheWorker) {
  const std::string n = name("shrunk");
  auto big = mproc::SharedMemory::create(8 * 512, n);
  mproc::SharedSpan<const double> span(big, 0, 512);
  big.unlink();
  auto small = mproc::SharedMemory::create(1024, n);  // same name, fewer bytes
  mproc::Pool pool(1);
  try {
    pool.apply(sum_slice, span);
    ADD_FAILURE() << "a span past the end of the block was mapped";
  } catch (const mproc::SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find("has 1024 bytes"), std::string::npos) << e.what();
  }
  small.unlink();
}

// ---- the tracker ------------------------------------------------------------------------------

TEST_F(NamedShm, TrackedBlockOfASigkilledCreatorIsUnlinkedWithinASecond) {
  const std::string n = name("killed");
  Helper h = start_helper({"create", n, "65536", "1"});
  ASSERT_EQ(read_line(h.out), "ready");
  ::close(h.out);
  EXPECT_TRUE(shm_exists(n));
  {  // another process sees what the creator wrote
    auto shm = mproc::SharedMemory::attach(n);
    EXPECT_EQ(shm.as<std::uint64_t>()[0], 0xC0FFEEu);
  }
  ::kill(h.pid, SIGKILL);
  int status = 0;
  ::waitpid(h.pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(mproc_test::eventually([&] { return !shm_exists(n); }, mproc_test::scaled(1000ms)))
      << "/dev/shm/" << n << " is still there " << mproc_test::scaled(1000ms).count()
      << " ms after its creator was SIGKILLed";
}

TEST_F(NamedShm, UntrackedBlockOutlivesItsSigkilledCreator) {
  const std::string n = name("untracked");
  Helper h = start_helper({"create", n, "4096", "0"});
  ASSERT_EQ(read_line(h.out), "ready");
  ::close(h.out);
  ::kill(h.pid, SIGKILL);
  ::waitpid(h.pid, nullptr, 0);
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(shm_exists(n));  // left for another program, as asked
  auto shm = mproc::SharedMemory::attach(n);
  EXPECT_EQ(shm.as<std::uint64_t>()[0], 0xC0FFEEu);
  shm.unlink();
}

TEST_F(NamedShm, TheTrackerLeavesANameThatNowNamesAnotherBlockAlone) {
  const std::string n = name("reused");
  Helper h = start_helper({"create", n, "4096", "1"});
  ASSERT_EQ(read_line(h.out), "ready");
  ::close(h.out);
  mproc::SharedMemory::attach(n).unlink();  // unlinked here, not by the creator's tracker...
  auto mine = mproc::SharedMemory::create(8192, n, /*track=*/false);  // ...and the name reused
  ::kill(h.pid, SIGKILL);
  ::waitpid(h.pid, nullptr, 0);
  std::this_thread::sleep_for(500ms);  // the creator's tracker has run its clean-up by now
  EXPECT_TRUE(shm_exists(n));
  EXPECT_EQ(mproc::SharedMemory::attach(n).size(), 8192u);
  mine.unlink();
}

// A pool worker has a tracker of its own (the zygote closes the descriptors it inherits, so a
// fork worker must not take the inherited number for the parent's tracker): what a worker made
// and left is unlinked when the pool's workers end, and the pool keeps working meanwhile.
TEST_F(NamedShm, WhatAPoolWorkerLeavesIsUnlinkedWhenTheWorkersEnd) {
  std::vector<std::string> names;
  {
    mproc::Pool pool(2);
    names = pool.map(leave_tracked_block_in_worker, std::vector<int>(6, 0), 1);
    for (const auto& n : names) adopt(n);
    for (const auto& n : names) EXPECT_TRUE(shm_exists(n)) << n;
    EXPECT_EQ(pool.map(leave_tracked_block_in_worker, std::vector<int>(4, 0), 1).size(), 4u);
  }
  EXPECT_TRUE(mproc_test::eventually(
      [&] {
        for (const auto& n : names)
          if (shm_exists(n)) return false;
        return true;
      },
      mproc_test::scaled(2000ms)));
}

// A Process started with fork shares this process's tracker: what it leaves lives as long as
// this process. A spawned (or forkserver) Process has its own: what it leaves goes with it.
TEST_F(NamedShm, AProcessLeavesATrackedBlockToTheTrackerItShares) {
  const std::string n = name("left");
  mproc::Process p(leave_tracked_block_in_process, n);
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  if (mproc::get_start_method() == mproc::StartMethod::kFork) {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(shm_exists(n));
    mproc::SharedMemory::attach(n).unlink();
  } else {
    EXPECT_TRUE(mproc_test::eventually([&] { return !shm_exists(n); }, mproc_test::scaled(2000ms)));
  }
}

TEST_F(NamedShm, TheTrackerIsAProcessOfItsOwnNotAChild) {
  const pid_t t = mproc::detail::shm_tracker_pid();
  ASSERT_GT(t, 0);
  EXPECT_EQ(::kill(t, 0), 0);
  EXPECT_EQ(mproc_test::child_pids().count(t), 0u);
}

// ---- SharedSpan ---------------------------------------------------------------------------------

TEST_F(NamedShm, SlicesGoToTasksAsHandlesAndEachWorkerMapsTheBlockOnce) {
  const std::string n = name("span");
  constexpr std::size_t kN = 100000;
  auto shm = mproc::SharedMemory::create(kN * sizeof(double), n);
  auto xs = shm.as<double>();
  for (std::size_t i = 0; i < kN; ++i) xs[i] = static_cast<double>(i + 1);
  const auto slices = mproc::slices_of<const double>(shm, 16);
  ASSERT_EQ(slices.size(), 16u);
  std::size_t covered = 0;
  for (const auto& s : slices) {
    EXPECT_EQ(s.offset(), covered);
    covered += s.size();
  }
  EXPECT_EQ(covered, kN);
  // What goes on the wire for one slice: the name, two numbers, not the data.
  mproc::detail::Bytes wire;
  {
    mproc::detail::WireOutputArchive out(wire);
    out(slices[0]);
  }
  EXPECT_LT(wire.size(), 100u);

  mproc::Pool pool(2);
  const auto parts = pool.map(sum_slice, slices, 1);
  EXPECT_DOUBLE_EQ(std::accumulate(parts.begin(), parts.end(), 0.0), kN * (kN + 1) / 2.0);

  const auto seen = pool.map(mapped_before, slices, 1);
  std::map<int, int> fresh_mappings;
  for (const auto& [pid, reused] : seen) fresh_mappings[pid] += reused ? 0 : 1;
  for (const auto& [pid, fresh] : fresh_mappings) EXPECT_LE(fresh, 1) << "worker " << pid;

  pool.map(scale_slice, mproc::slices_of<double>(shm, 4), 1);  // writable slices
  EXPECT_EQ(xs[0], 2.0);
  EXPECT_EQ(xs[kN - 1], 2.0 * kN);
  shm.unlink();
}

TEST_F(NamedShm, ASliceOutOfRangeIsRefusedBeforeTheTaskRuns) {
  const std::string n = name("range");
  auto shm = mproc::SharedMemory::create(100 * sizeof(double), n);
  mproc::Value<int> ran(0);
  mproc::Pool pool(1);
  EXPECT_THROW(pool.apply(count_and_sum, mproc::SharedSpan<const double>(shm, 90, 20), ran),
               std::out_of_range);
  EXPECT_THROW(mproc::SharedSpan<double>(shm, 101, 0), std::out_of_range);
  mproc::SharedSpan<const double> whole(shm);
  EXPECT_EQ(whole.size(), 100u);
  EXPECT_THROW(whole.subspan(50, 51), std::out_of_range);
  EXPECT_THROW(mproc::slices_of(whole, 0), std::invalid_argument);
  EXPECT_EQ(pool.apply(count_and_sum, whole.subspan(50, 50), ran), 0.0);
  EXPECT_EQ(ran.get(), 1);  // only the valid one ran
  shm.unlink();
}

// ---- ShareableList ------------------------------------------------------------------------------

TEST_F(NamedShm, ShareableListsOfEachElementTypeRoundTrip) {
  mproc::ShareableList<int> ints(std::vector<int>{-1, 2, 3}, name("ints"));
  mproc::ShareableList<double> doubles(std::vector<double>{0.5, 1.25}, name("doubles"));
  mproc::ShareableList<bool> bools(std::vector<bool>{true, false}, name("bools"));
  mproc::ShareableList<std::string> strings({"hello", "", "wide"}, 0, name("strings"));
  mproc::ShareableList<std::uint8_t> bytes(std::vector<std::uint8_t>{1, 2, 3}, name("bytes"));
  EXPECT_EQ(strings.max_length(), 8u);  // the longest value, rounded up to 8

  mproc::Process p(rewrite_lists, ints, doubles, bools, strings, bytes);
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_EQ(ints.to_vector(), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(doubles.to_vector(), (std::vector<double>{0.5, 2.5}));
  EXPECT_EQ(bools.to_vector(), (std::vector<bool>{false, false}));
  EXPECT_EQ(strings.to_vector(), (std::vector<std::string>{"hello", "hello!", "wide"}));
  EXPECT_EQ(bytes.to_vector(), (std::vector<std::uint8_t>{1, 2, 255}));

  // Attached by name, in this process.
  auto again = mproc::ShareableList<std::string>::attach(strings.name());
  EXPECT_EQ(again.size(), 3u);
  EXPECT_EQ(again[1], "hello!");
  EXPECT_EQ(again.index("wide"), 2u);
  EXPECT_EQ(again.count("hello"), 1u);

  mproc::ShareableList<long long> longs(std::vector<long long>{1, 2, 3, 4}, name("longs"));
  mproc::Pool pool(1);
  EXPECT_EQ(pool.apply(sum_list, longs), 10);
  EXPECT_EQ(longs.get(0), 10);

  for (const auto* l :
       {&ints.shm(), &doubles.shm(), &bools.shm(), &strings.shm(), &bytes.shm(), &longs.shm()})
    l->unlink();
}

TEST_F(NamedShm, ShareableListRefusesWhatDoesNotFit) {
  mproc::ShareableList<std::string> s({"ab", "cd"}, 16, name("strfit"));
  EXPECT_EQ(s.max_length(), 16u);
  s.set(0, std::string(16, 'x'));
  EXPECT_EQ(s.get(0), std::string(16, 'x'));
  EXPECT_THROW(s.set(1, std::string(17, 'y')), std::length_error);
  EXPECT_EQ(s.get(1), "cd");  // unchanged
  EXPECT_THROW(s.get(2), std::out_of_range);
  EXPECT_THROW((mproc::ShareableList<std::string>({std::string(20, 'z')}, 8)), std::length_error);
  // A block that is not a list of this type.
  expect_shm_error([&] { mproc::ShareableList<int>::attach(s.name()); }, EINVAL,
                   "another element type");
  const std::string raw = name("raw");
  auto plain = mproc::SharedMemory::create(4096, raw);
  expect_shm_error([&] { mproc::ShareableList<int>::attach(raw); }, EINVAL, "not a ShareableList");
  plain.unlink();
  s.shm().unlink();
}

// ---- SharedMemoryManager ----------------------------------------------------------------------

TEST_F(NamedShm, SharedMemoryManagerUnlinksEverythingItMadeAtShutdown) {
  std::vector<std::string> made;
  {
    mproc::SharedMemoryManager smm;
    auto a = smm.SharedMemory(1000);
    auto b = smm.SharedMemory(50);
    auto l = smm.ShareableList(std::vector<double>{1.5, 2.5});
    auto s = smm.ShareableList(std::vector<std::string>{"x", "yy"});
    made = {a.name(), b.name(), l.name(), s.name()};
    EXPECT_EQ(smm.names(), made);
    for (const auto& n : made) EXPECT_TRUE(shm_exists(n)) << n;
    b.unlink();  // one unlinked by hand: shutdown skips it

    // A fork child's copy acts on nothing.
    mproc_test::Children kids;
    kids.spawn([&smm] {
      try {
        (void)smm.SharedMemory(10);
        return 1;
      } catch (const mproc::SharedMemoryError& e) {
        if (e.code() != EPERM) return 2;
      }
      smm.shutdown();  // does nothing here
      return 0;
    });
    kids.join_ok();
    for (const auto& n : {a.name(), l.name(), s.name()}) EXPECT_TRUE(shm_exists(n)) << n;

    smm.shutdown();
    for (const auto& n : made) EXPECT_FALSE(shm_exists(n)) << n;
    a.buf()[999] = std::byte{1};  // the handles still work: only the names are gone
    EXPECT_EQ(l.get(1), 2.5);
    EXPECT_TRUE(smm.names().empty());
    made.push_back(smm.SharedMemory(10).name());  // destruction unlinks this one
    EXPECT_TRUE(shm_exists(made.back()));
  }
  EXPECT_FALSE(shm_exists(made.back()));
}
