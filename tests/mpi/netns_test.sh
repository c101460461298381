#!/usr/bin/env bash
# Three "hosts" on one machine: network namespaces h1..h3 (10.77.0.1-3/24) joined by a bridge
# in a fourth namespace, so the machine's own network is never touched. mpirun runs in h1 and
# reaches h2 and h3 through an rsh agent that maps each address to `ip netns exec`; ranks talk
# over OpenMPI's TCP transport only (btl self,tcp). Exit 77 (ctest: skipped) when namespaces
# cannot be made (not root, no CAP_NET_ADMIN, no iproute2). Namespaces are always removed.
# Usage: netns_test.sh MPIRUN PROGRAM
set -u
mpirun=$1
app=$2
skip() { echo "SKIP: $*"; exit 77; }
command -v ip >/dev/null || skip "no 'ip' command (iproute2) to make network namespaces"
[ "$(id -u)" -eq 0 ] || skip "making network namespaces needs root (CAP_NET_ADMIN)"

p="mproc-mpi-$$-"  # unique names: concurrent runs do not collide
tmp=$(mktemp -d)
cleanup() {
  for n in h1 h2 h3 sw; do ip netns del "${p}$n" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

network() {  # the namespaces, the bridge and the links; fails at the first step that fails
  ip netns add "${p}sw" || return 1
  ip -n "${p}sw" link add br0 type bridge || return 1
  ip -n "${p}sw" link set br0 up || return 1
  for i in 1 2 3; do
    ip netns add "${p}h$i" || return 1
    ip -n "${p}sw" link add "h$i" type veth peer name eth0 netns "${p}h$i" || return 1
    ip -n "${p}sw" link set "h$i" master br0 up || return 1
    ip -n "${p}h$i" addr add "10.77.0.$i/24" dev eth0 || return 1
    ip -n "${p}h$i" link set eth0 up || return 1
    ip -n "${p}h$i" link set lo up || return 1
  done
}
# Where the sandbox forbids namespaces, bridges or veth pairs, this test cannot run here.
network 2>"$tmp/err" || skip "cannot build the namespaced network: $(tail -1 "$tmp/err")"

cat >"$tmp/netns-rsh.sh" <<AGENT
#!/bin/sh
# OpenMPI's launcher calls this like ssh: HOST COMMAND...; the host is an address of a namespace.
host=\$1
shift
case "\$host" in
  10.77.0.1) ns=${p}h1 ;;
  10.77.0.2) ns=${p}h2 ;;
  10.77.0.3) ns=${p}h3 ;;
  *) echo "netns-rsh: unknown host \$host" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$tmp/netns-rsh.sh"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n10.77.0.3 slots=1\n' >"$tmp/hosts"

# The ctest environment keeps single-host runs on shared memory and loopback; here the ranks
# must use the namespaces' network.
unset OMPI_MCA_btl OMPI_MCA_oob_tcp_if_include
run_job() {
  timeout --kill-after=5 40 ip netns exec "${p}h1" "$mpirun" -n 3 --hostfile "$tmp/hosts" \
    --mca plm_rsh_agent "$tmp/netns-rsh.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 \
    --mca oob_tcp_if_include 10.77.0.0/24 "$app" >"$tmp/out" 2>&1
}
start=$(date +%s)
run_job
rc=$?
if [ "$rc" -eq 124 ]; then
  # Seen twice in about fifteen runs on a loaded machine, before MPI tests took turns: mpirun
  # ran into the time limit (its output was not kept, so the cause is not known). Show what it
  # printed and launch once more: a second stall fails the test.
  cat "$tmp/out"
  echo "note: the job did not finish within 40 s; launching it once more"
  run_job
  rc=$?
fi
cat "$tmp/out"
echo "== mpirun exit code $rc after $(($(date +%s) - start)) s"
[ "$rc" -eq 0 ] || { echo "FAIL: the multi-host job failed"; exit 1; }
grep -q "^OK$" "$tmp/out" || { echo "FAIL: the program did not report OK"; exit 1; }
echo "PASS: 3 ranks on 3 network namespaces over TCP"
