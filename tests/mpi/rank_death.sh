#!/usr/bin/env bash
# What happens when a task hangs or an MPI rank is lost, checked; nothing may hang.
#   rank_death.sh MPIRUN PROGRAM die     a task kills its rank process: OpenMPI (no fault
#                                        tolerance in 4.x) ends the whole job, the coordinator
#                                        (rank 0) included, promptly, with a message naming
#                                        the rank.
#   rank_death.sh MPIRUN PROGRAM stuck   a task never ends: its rank kills it at the time
#                                        limit, the caller gets TaskTimeoutError and the job
#                                        ends at once with exit code 0.
set -u
mpirun=$1
app=$2
mode=${3:-die}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
limit=60
timeout --kill-after=5 "$limit" "$mpirun" --oversubscribe -n 3 "$app" "$mode" >"$out" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))
cat "$out"
echo "== mpirun exit code $rc after ${elapsed} s"
fail() { echo "FAIL: $*"; exit 1; }
[ "$rc" -ne 124 ] && [ "$elapsed" -lt "$limit" ] || fail "the job hung (stopped by the ${limit} s timeout)"
grep -q "UNEXPECTED" "$out" && fail "the coordinator went on as if nothing happened"
case "$mode" in
  die)
    [ "$rc" -ne 0 ] || fail "the job succeeded although a rank was lost"
    grep -q "submitting a task that kills its rank" "$out" || fail "the task was never submitted"
    # (mpirun exits 137 = 128 + SIGKILL, the dead rank's signal.)
    grep -Eq "mpirun noticed that process rank 1 .* exited on signal 9" "$out" ||
      fail "mpirun's message naming the dead rank is missing"
    [ "$elapsed" -le 30 ] || fail "the job took ${elapsed} s to end"
    ;;
  stuck)
    [ "$rc" -eq 0 ] || fail "the job failed (exit code $rc)"
    grep -q "TaskTimeoutError: .*MPI rank" "$out" || fail "the caller did not get TaskTimeoutError"
    grep -q "aborting the job" "$out" && fail "rank 0 had to abort the job at exit"
    [ "$elapsed" -le 20 ] || fail "the exit took ${elapsed} s"
    ;;
  *) fail "unknown mode $mode" ;;
esac
echo "PASS ($mode): exit code $rc after ${elapsed} s, as documented in mproc/mpi.hpp"
