#!/usr/bin/env bash
# mproc's one entry point for people and CI (README's quick start calls it):
#   bash cmake/run.sh demo   install what is missing, build Release, run the throughput demo
#   bash cmake/run.sh test   install what is missing, build, run every test (Release and
#                            ASan+UBSan), build a consumer project against the installed package,
#                            and fuzz the wire for about a minute (cmake/fuzz.sh)
#   bash cmake/run.sh tsan   the suite under ThreadSanitizer (not in CI: slow)
# Works as root on a fresh Debian 12; installs only Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc)

PACKAGES=(build-essential cmake ninja-build pkg-config libcereal-dev libasio-dev libspdlog-dev
          libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libsodium-dev gnuplot-nox python3
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
  cmake --build "$dir" -j "$JOBS"
}

run_tests() {  # run_tests DIR LABEL
  echo "== ctest ($2)"
  (cd "$1" && ctest --output-on-failure -j "$JOBS" --timeout 300)
}

case "${1:-}" in
  demo)
    install_deps
    build "$ROOT/build/release" Release
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
    cmake -S "$ROOT/tests/consumer" -B "$ROOT/build/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$ROOT/build/prefix" >/dev/null
    cmake --build "$ROOT/build/consumer"
    "$ROOT/build/consumer/mproc_consumer"
    build "$ROOT/build/asan" Debug -DMPROC_SANITIZE=address,undefined -DMPROC_BUILD_BENCHMARKS=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_tests "$ROOT/build/asan" "AddressSanitizer+UBSan"
    echo "== fuzzing the wire (libFuzzer, ${FUZZ_SECONDS:-60} s)"
    bash "$ROOT/cmake/fuzz.sh"
    ;;
  tsan)
    install_deps
    build "$ROOT/build/tsan" Debug -DMPROC_SANITIZE=thread -DMPROC_BUILD_BENCHMARKS=OFF
    TSAN_OPTIONS=halt_on_error=1 run_tests "$ROOT/build/tsan" "ThreadSanitizer"
    ;;
  *)
    echo "usage: bash cmake/run.sh demo|test|tsan" >&2
    exit 2
    ;;
esac
