#!/usr/bin/env python3
"""Python's multiprocessing.Pool on mproc-bench's workloads (the baseline mproc is judged against).

    python3 mp_bench.py --workload apply_async --n 100000 --workers 2

Prints one JSON object on its last line: {"workload", "n", "workers", "unit", "value", "seconds"}.
The fork start method is used explicitly (as mproc forks its workers). The pool is created and
warmed up before the timed section, as in mproc-bench, so interpreter and pool start-up are not
counted.
"""
import argparse
import json
import math
import multiprocessing
import sys
import time

PAYLOAD_BYTES = 1 << 20


def trivial(x):
    return x + 1


def cpu_work(iters):
    acc = float(iters)
    for i in range(1, iters):
        acc = math.sin(acc) + math.sqrt(acc * acc + i)
    return acc


def echo(payload):
    return payload


def calibrate_cpu_work(target_s=100e-6):
    """Iterations of cpu_work that take about target_s here (best of a few tries)."""
    probe = 2000
    best = min(_timed(cpu_work, probe) for _ in range(5))
    return max(10, int(probe * target_s / best))


def _timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def manager_client(d, lock, n):
    """One client of manager_clients_K: n increments of d["k"] under the Manager's Lock."""
    for _ in range(n):
        with lock:
            d["k"] += 1


def run_manager(workload, n, ctx):
    """Manager().dict() round trips (us per call), or increments from K client processes."""
    with ctx.Manager() as manager:
        d = manager.dict()
        if workload == "manager_call":
            # d[k] = i then d[k], alternately: one round trip each (as mproc's d.set / d.get).
            for i in range(200):
                d[1] = i
                d[1]
            pairs = n // 2
            total = 0
            t0 = time.perf_counter()
            for i in range(pairs):
                d[1] = i
                total += d[1]
            s = time.perf_counter() - t0
            assert total == pairs * (pairs - 1) // 2
            return "us/call", s * 1e6 / (2 * pairs)
        # manager_clients_K: Python has no update_with; `with lock: d[k] += 1` under a Manager
        # Lock is its atomic increment (acquire, __getitem__, __setitem__, release).
        clients = int(workload[len("manager_clients_"):])
        lock = manager.Lock()
        d["k"] = 0
        per = n // clients
        ps = [ctx.Process(target=manager_client, args=(d, lock, per)) for _ in range(clients)]
        t0 = time.perf_counter()
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        s = time.perf_counter() - t0
        assert all(p.exitcode == 0 for p in ps), [p.exitcode for p in ps]
        assert d["k"] == per * clients, (d["k"], per * clients)
        return "calls/s", per * clients / s


def warm_up(pool):
    pool.map(trivial, range(1000))
    for r in [pool.apply_async(trivial, (i,)) for i in range(200)]:
        r.get()
    for i in range(20):
        pool.apply(trivial, (i,))


def run(workload, n, workers):
    if workload.startswith("startup_"):
        # Pool(workers) creation to its first result, per start method (median of n).
        ctx = multiprocessing.get_context(workload[len("startup_"):])
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            pool = ctx.Pool(workers)
            pool.apply(trivial, (1,))
            times.append(time.perf_counter() - t0)
            pool.terminate()
            pool.join()
        times.sort()
        return "ms", times[len(times) // 2] * 1e3

    ctx = multiprocessing.get_context("fork")

    if workload.startswith("manager_"):
        return run_manager(workload, n, ctx)

    if workload == "cpu_serial":
        iters = calibrate_cpu_work()
        t0 = time.perf_counter()
        for _ in range(n):
            cpu_work(iters)
        return "tasks/s", n / (time.perf_counter() - t0)

    if workload == "maxtasks":
        with ctx.Pool(workers, maxtasksperchild=1) as pool:
            for _ in range(4 * workers):
                pool.apply(trivial, (0,))
            t0 = time.perf_counter()
            rs = [pool.apply_async(trivial, (i,)) for i in range(n)]
            total = sum(r.get() for r in rs)
            s = time.perf_counter() - t0
        assert total == n * (n + 1) // 2
        return "tasks/s", n / s

    with ctx.Pool(workers) as pool:
        warm_up(pool)
        if workload == "apply":
            t0 = time.perf_counter()
            total = 0
            for i in range(n):
                total += pool.apply(trivial, (i,))
            s = time.perf_counter() - t0
            assert total == n * (n + 1) // 2
            return "us/call", s * 1e6 / n
        if workload == "apply_async":
            t0 = time.perf_counter()
            rs = [pool.apply_async(trivial, (i,)) for i in range(n)]
            total = sum(r.get() for r in rs)
            s = time.perf_counter() - t0
            assert total == n * (n + 1) // 2
            return "tasks/s", n / s
        if workload == "map":
            t0 = time.perf_counter()
            out = pool.map(trivial, range(n))
            s = time.perf_counter() - t0
            assert len(out) == n and out[-1] == n
            return "items/s", n / s
        if workload == "imap":
            t0 = time.perf_counter()
            total = sum(pool.imap(trivial, range(n), 1))
            s = time.perf_counter() - t0
            assert total == n * (n + 1) // 2
            return "items/s", n / s
        if workload == "cpu":
            iters = calibrate_cpu_work()
            t0 = time.perf_counter()
            out = pool.map(cpu_work, [iters] * n)
            s = time.perf_counter() - t0
            assert len(out) == n
            return "tasks/s", n / s
        if workload == "payload":
            payload = b"p" * PAYLOAD_BYTES
            for _ in range(3):
                pool.apply(echo, (payload,))
            t0 = time.perf_counter()
            total = 0
            for _ in range(n):
                total += len(pool.apply(echo, (payload,)))
            s = time.perf_counter() - t0
            assert total == n * PAYLOAD_BYTES
            return "GB/s", total / s / 1e9
    raise SystemExit(f"unknown workload {workload!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True,
                   choices=["apply", "apply_async", "map", "imap", "cpu_serial", "cpu",
                            "payload", "maxtasks", "startup_fork", "startup_forkserver",
                            "startup_spawn", "manager_call", "manager_clients_1",
                            "manager_clients_8"])
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    t0 = time.perf_counter()
    unit, value = run(a.workload, a.n, a.workers)
    print(json.dumps({"workload": a.workload, "n": a.n, "workers": a.workers, "unit": unit,
                      "value": value, "seconds": time.perf_counter() - t0,
                      "python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
