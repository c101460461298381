#!/usr/bin/env bash
# Builds mproc's libFuzzer targets with Clang (build/fuzz) and runs each for a bounded time.
#   bash cmake/fuzz.sh                 # ~60 s in total, split between the targets
#   FUZZ_SECONDS=600 bash cmake/fuzz.sh
#   FUZZ_TARGETS="wire_decode task_frame" bash cmake/fuzz.sh
# The fuzzers need no MPI (MPROC_WITH_MPI=OFF): the MPI engine carries the same frames.
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>/, copied to a scratch
# corpus, which is what grows) plus its saved findings (tests/fuzz/regressions/<target>/).
# A crash, sanitizer report, leak, timeout or over-limit allocation stops that target; its input
# is left in build/fuzz/findings/<target>/ and the script exits 1 after running the rest.
# Keep a finding by copying it to tests/fuzz/regressions/<target>/ (fuzz_regressions_test then
# replays it in every build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build/fuzz
CC_BIN=${CC_FUZZ:-clang-14}
CXX_BIN=${CXX_FUZZ:-clang++-14}
TOTAL=${FUZZ_SECONDS:-60}
TARGETS=(${FUZZ_TARGETS:-frame_header wire_decode exception_decode task_frame})
RSS_MB=${FUZZ_RSS_LIMIT_MB:-2048}
MALLOC_MB=${FUZZ_MALLOC_LIMIT_MB:-512}

for tool in "$CC_BIN" "$CXX_BIN" cmake ninja; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (apt-get install clang-14 libclang-rt-14-dev cmake ninja-build)" >&2; exit 2; }
done

start=$(date +%s)
echo "== configure $BUILD ($CXX_BIN, MPROC_FUZZ=ON)"
CC=$CC_BIN CXX=$CXX_BIN cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMPROC_FUZZ=ON -DMPROC_BUILD_BENCHMARKS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_WITH_MPI=OFF >/dev/null
echo "== build fuzz targets"
cmake --build "$BUILD" -j "${FUZZ_JOBS:-2}" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

per=$((TOTAL / ${#TARGETS[@]}))
((per >= 1)) || per=1
work=$(mktemp -d "${TMPDIR:-/tmp}/mproc-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
findings=$BUILD/findings
failed=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

for t in "${TARGETS[@]}"; do
  bin=$BUILD/tests/fuzz/fuzz_$t
  corpus=$work/$t
  rm -rf "${findings:?}/$t"
  mkdir -p "$corpus" "$findings/$t"
  cp "$ROOT/tests/fuzz/corpus/$t/"* "$corpus/"
  seeds=("$corpus")
  regress=$ROOT/tests/fuzz/regressions/$t
  if compgen -G "$regress/[!.]*" >/dev/null; then seeds+=("$regress"); fi
  echo "== fuzz_$t for ${per}s"
  log=$findings/$t/fuzz.log
  set +e
  "$bin" "${seeds[@]}" -max_total_time="$per" -rss_limit_mb="$RSS_MB" \
    -malloc_limit_mb="$MALLOC_MB" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$findings/$t/" >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" |
    awk '!seen[$0]++ { print "   " $0 }' || true
  if ((rc != 0)); then
    failed+=("$t")
    echo "!! fuzz_$t: finding (exit $rc); input and log in $findings/$t/"
    grep -E 'ERROR:|runtime error:|invariant violated|SUMMARY:|Test unit written' "$log" |
      head -5 | sed 's/^/   /' || true
  fi
done

echo "== done in $(($(date +%s) - start))s"
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
