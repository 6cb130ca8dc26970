"""Benchmark target for native sampling: one thread working at the bottom of a mixed stack.

Usage: native_target.py [--seconds S | --iterations N] [--depth D] [--ready FILE]

The main thread recurses D levels (default 6) through C: level() calls the builtin sorted()
with a key function that calls level() again, so Python and C frames alternate; at the
bottom, leaf() spins in pure Python. With --seconds it loops for S seconds; with --iterations it
does N rounds of fixed work and prints {"elapsed_s": ...} (for slowdown measurements). --ready:
written (atomically) once the loop runs: {"pid": ..., "tid": ...}.
"""
import json
import os
import sys
import threading
import time


def leaf(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def level(depth, n):
    if depth == 0:
        return leaf(n)
    return sorted([0], key=lambda _: level(depth - 1, n))[0]


def main():
    args = sys.argv[1:]
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 0.0
    iterations = int(args[args.index("--iterations") + 1]) if "--iterations" in args else 0
    depth = int(args[args.index("--depth") + 1]) if "--depth" in args else 6
    ready = args[args.index("--ready") + 1] if "--ready" in args else None
    if ready:
        with open(ready + ".tmp", "w") as f:
            json.dump({"pid": os.getpid(), "tid": threading.get_native_id()}, f)
        os.rename(ready + ".tmp", ready)
    t0 = time.perf_counter()
    if iterations:
        for _ in range(iterations):
            level(depth, 20000)
    else:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            level(depth, 20000)
    print(json.dumps({"elapsed_s": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
