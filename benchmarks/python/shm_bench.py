#!/usr/bin/env python3
"""The Python side of mproc-bench's shm-reduce: the sum of an array of doubles in a
multiprocessing.shared_memory block, on a fork Pool of --workers workers. Each task receives
(name, start, stop), attaches by name and sums its slice in place: numpy's sum when numpy is
installed, else the built-in sum over a memoryview (no copy either way). Prints one JSON line:
{"workload": "shm-reduce", "value": GB/s, "kernel": "numpy" | "memoryview"}.
"""
import argparse
import json
import multiprocessing as mp
import time
from array import array
from multiprocessing import shared_memory

try:
    import numpy as np
except ImportError:
    np = None


def sum_slice(task):
    name, start, stop = task
    shm = shared_memory.SharedMemory(name=name)
    try:
        if np is not None:
            a = np.ndarray((stop - start,), dtype=np.float64, buffer=shm.buf, offset=start * 8)
            s = float(a.sum())
            del a
        else:
            with shm.buf.cast("d") as mv, mv[start:stop] as part:
                s = sum(part)
    finally:
        shm.close()
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slices", type=int, default=8)
    args = ap.parse_args()
    n = args.bytes // 8
    shm = shared_memory.SharedMemory(create=True, size=n * 8)
    try:
        # Fill with i % 8 in 8 MiB pieces (small integers: every summation order is exact).
        piece = array("d", [float(i) for i in range(8)]) * (1 << 17)
        pb = memoryview(piece).cast("B")
        step = len(pb)
        for off in range(0, n * 8, step):
            m = min(step, n * 8 - off)
            shm.buf[off:off + m] = pb[:m]
        expected = (n // 8) * 28.0
        bounds = [n * i // args.slices for i in range(args.slices + 1)]
        tasks = [(shm.name, bounds[i], bounds[i + 1]) for i in range(args.slices)]
        with mp.get_context("fork").Pool(args.workers) as pool:
            pool.map(abs, range(100), chunksize=1)  # warm up
            t0 = time.perf_counter()
            total = sum(pool.map(sum_slice, tasks, chunksize=1))
            t = time.perf_counter() - t0
        if total != expected:
            raise SystemExit(f"wrong sum {total} != {expected}")
        print(json.dumps({"workload": "shm-reduce", "value": n * 8 / t / 1e9,
                          "kernel": "numpy" if np is not None else "memoryview"}))
    finally:
        shm.close()
        shm.unlink()


if __name__ == "__main__":
    main()
