#!/usr/bin/env bash
# mproc's one entry point for people and CI (README's quick start calls it):
#   bash cmake/run.sh demo   install what is missing, build Release, run the throughput demo
#   bash cmake/run.sh test   install what is missing, build, run every test (Release and
#                            ASan+UBSan), build a consumer project against the installed package,
#                            run the pool, supervision and start-method suites under
#                            ThreadSanitizer, and fuzz the wire for about a minute (cmake/fuzz.sh)
#   bash cmake/run.sh tsan   the whole suite under ThreadSanitizer (not in CI: slow)
# Works as root on a fresh Debian 12; installs only Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc)

PACKAGES=(build-essential cmake ninja-build pkg-config libcereal-dev libasio-dev libspdlog-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libsodium-dev gnuplot-nox python3
          openmpi-bin libopenmpi-dev iproute2)
# Only the test run needs these: libFuzzer comes with Clang.
FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)

install_deps() {  # install_deps [extra packages...]
  local missing=()
  for p in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

build() {  # build DIR BUILD_TYPE [extra cmake args...]
  local dir=$1 type=$2
  shift 2
  # MPROC_WITH_MPI=ON: a missing MPI library fails the build instead of skipping the MPI engine.
  cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DMPROC_WITH_MPI=ON "$@" >/dev/null
  # shellcheck disable=SC2086  # BUILD_TARGETS is a list
  cmake --build "$dir" -j "$JOBS" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
}

run_tests() {  # run_tests DIR LABEL [ctest args...]
  local dir=$1 label=$2
  shift 2
  echo "== ctest ($label)"
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" --timeout 300 "$@")
}

# cmake/tsan.supp holds what ThreadSanitizer reports in code that is not mproc's (OpenMPI).
TSAN_RUN_OPTIONS="halt_on_error=1:suppressions=$ROOT/cmake/tsan.supp"
# The suites CI runs under ThreadSanitizer: the ones whose threads and processes interleave
# most. Tests are labelled with their binary (tests/CMakeLists.txt).
TSAN_CI_SUITES=(pool_test pool_supervision_test pool_api_test start_method_test futures_test
                pool_direct_test)

tsan_configure() {
  cmake -S "$ROOT" -B "$ROOT/build/tsan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMPROC_WITH_MPI=ON \
    -DMPROC_SANITIZE=thread -DMPROC_BUILD_BENCHMARKS=OFF >/dev/null
}

case "${1:-}" in
  demo)
    install_deps
    # Only what it runs: the demo and mproc-bench, not every test and example.
    BUILD_TARGETS="throughput_demo mproc-bench" build "$ROOT/build/release" Release
    "$ROOT/build/release/examples/throughput_demo"
    if [ -x "$ROOT/build/release/benchmarks/mproc-bench" ]; then
      "$ROOT/build/release/benchmarks/mproc-bench" --quick --out-dir "$ROOT/build/bench-results"
    fi
    ;;
  test)
    install_deps "${FUZZ_PACKAGES[@]}"
    build "$ROOT/build/release" Release
    run_tests "$ROOT/build/release" "Release"
    echo "== consumer project against the installed package"
    rm -rf "$ROOT/build/prefix" "$ROOT/build/consumer"
    cmake --install "$ROOT/build/release" --prefix "$ROOT/build/prefix" >/dev/null
    # Only what mproc.hpp reaches is installed: no internals of the worker module, no fork server.
    for internal in mproc/worker mproc/runtime/detail/forkserver.hpp mproc/runtime/detail/process_table.hpp; do
      if [ -e "$ROOT/build/prefix/include/$internal" ]; then
        echo "installed an internal header: $internal" >&2
        exit 1
      fi
    done
    cmake -S "$ROOT/tests/consumer" -B "$ROOT/build/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$ROOT/build/prefix" >/dev/null
    cmake --build "$ROOT/build/consumer"
    "$ROOT/build/consumer/mproc_consumer"
    echo "== the same consumer built with pkg-config (no CMake)"
    # shellcheck disable=SC2046  # pkg-config's flags are meant to be split
    c++ -O2 -o "$ROOT/build/consumer/mproc_consumer_pc" "$ROOT/tests/consumer/main.cpp" \
      $(PKG_CONFIG_PATH="$ROOT/build/prefix/lib/pkgconfig" pkg-config --cflags --libs mproc)
    "$ROOT/build/consumer/mproc_consumer_pc"
    build "$ROOT/build/asan" Debug -DMPROC_SANITIZE=address,undefined -DMPROC_BUILD_BENCHMARKS=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_tests "$ROOT/build/asan" "AddressSanitizer+UBSan"
    echo "== ThreadSanitizer: ${TSAN_CI_SUITES[*]}"
    tsan_start=$(date +%s)
    tsan_configure
    cmake --build "$ROOT/build/tsan" -j "$JOBS" --target "${TSAN_CI_SUITES[@]}"
    TSAN_OPTIONS=$TSAN_RUN_OPTIONS run_tests "$ROOT/build/tsan" "ThreadSanitizer" \
      -L "^($(IFS='|' && echo "${TSAN_CI_SUITES[*]}"))(\.|\$)"
    echo "== ThreadSanitizer suites: $(($(date +%s) - tsan_start)) s (build and run)"
    echo "== fuzzing the wire (libFuzzer, ${FUZZ_SECONDS:-60} s)"
    bash "$ROOT/cmake/fuzz.sh"
    ;;
  tsan)
    install_deps
    tsan_configure
    cmake --build "$ROOT/build/tsan" -j "$JOBS"
    TSAN_OPTIONS=$TSAN_RUN_OPTIONS run_tests "$ROOT/build/tsan" "ThreadSanitizer"
    ;;
  *)
    echo "usage: bash cmake/run.sh demo|test|tsan" >&2
    exit 2
    ;;
esac
