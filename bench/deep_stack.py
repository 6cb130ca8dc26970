"""Benchmark target: a pure-Python workload running 32 frames deep.

Usage: deep_stack.py [SECONDS] [DEPTH] [ITERATIONS] [STAMPS.json]
Prints the wall time the fixed amount of work took, as JSON, when SECONDS is 0 it runs
a fixed number of iterations (for slowdown measurements); otherwise it loops for SECONDS.
With STAMPS.json it prints "ready", records time.monotonic() after every unit of work and
writes the list there (bench/slowdown.py)."""
import json
import sys
import time


def work(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def descend(depth, n):
    if depth <= 1:
        return work(n)
    return descend(depth - 1, n)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    stamps_path = sys.argv[4] if len(sys.argv) > 4 else None
    # <module>, main() and work() plus `depth - 3` descend() frames: `depth` frames in all.
    inner = depth - 3
    t0 = time.perf_counter()
    if stamps_path:
        stamps = []
        print("ready", flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            descend(inner, 2000)
            stamps.append(time.monotonic())
        with open(stamps_path, "w") as f:
            json.dump(stamps, f)
    elif iterations:
        for _ in range(iterations):
            descend(inner, 2000)
    else:
        end = time.time() + seconds
        while time.time() < end:
            descend(inner, 2000)
    print(json.dumps({"elapsed_s": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
