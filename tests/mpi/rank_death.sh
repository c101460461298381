#!/usr/bin/env bash
# What happens when an MPI rank dies in a task, checked: OpenMPI (no fault tolerance in 4.x)
# ends the whole job — the coordinator (rank 0) included — promptly and with a message naming
# the rank; nothing hangs. Usage: rank_death.sh MPIRUN RANK_DEATH_PROGRAM
set -u
mpirun=$1
app=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
timeout --kill-after=5 60 "$mpirun" --oversubscribe -n 3 "$app" >"$out" 2>&1
rc=$?
elapsed=$(($(date +%s) - start))
cat "$out"
echo "== mpirun exit code $rc after ${elapsed} s"
fail() { echo "FAIL: $*"; exit 1; }
# (mpirun itself exits 137 = 128 + SIGKILL, the dead rank's signal; a hang is timeout's 124.)
[ "$rc" -ne 124 ] && [ "$elapsed" -lt 60 ] || fail "the job hung (stopped by the 60 s timeout)"
[ "$rc" -ne 0 ] || fail "the job succeeded although a rank died"
grep -q "submitting a task that kills its rank" "$out" || fail "the task was never submitted"
grep -q "UNEXPECTED" "$out" && fail "the coordinator went on as if nothing happened"
grep -Eq "mpirun noticed that process rank 1 .* exited on signal 9" "$out" ||
  fail "mpirun's message naming the dead rank is missing"
[ "$elapsed" -le 30 ] || fail "the job took ${elapsed} s to end"
echo "PASS: a dead rank ends the job (exit code $rc, ${elapsed} s), as documented in mproc/mpi.hpp"
