#!/usr/bin/env python3
"""Compares `continuum bench` builds by CPU time per workflow, run alternately.

This machine is shared and noisy: one wall time says little. Each round runs every build once,
in a random order, under `perf stat -e task-clock` (user + system CPU of the whole process), and
the report gives the median per build and its ratio to the first build named.

    swift build -c release --product continuum && cp .build/release/continuum /tmp/continuum-new
    tools/compare-cpu.py 20 40000 old=/tmp/continuum-old new=/tmp/continuum-new
    tools/compare-cpu.py 10 20000 old=... new=... -- --scenario timers

Environment: SHM=1 puts each store in /dev/shm (no disk), CPUS=0 pins the runs to CPU 0.
"""
import os
import random
import shutil
import statistics
import subprocess
import sys
import uuid


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, workflows = int(sys.argv[1]), int(sys.argv[2])
    rest = sys.argv[3:]
    extra: list[str] = []
    if "--" in rest:
        extra = rest[rest.index("--") + 1:]
        rest = rest[: rest.index("--")]
    builds = dict(arg.split("=", 1) for arg in rest)
    results: dict[str, list[float]] = {label: [] for label in builds}
    for round_number in range(rounds):
        order = list(builds)
        random.shuffle(order)
        for label in order:
            path = f"/dev/shm/continuum-compare-{uuid.uuid4()}" if os.environ.get("SHM") else None
            command = ["perf", "stat", "-x,", "-e", "task-clock", builds[label], "bench",
                       "--workflows", str(workflows), "--steps", "3", "--concurrency", "1000", "--json"]
            command += (["--path", path] if path else []) + extra
            if os.environ.get("CPUS"):
                command = ["taskset", "-c", os.environ["CPUS"]] + command
            run = subprocess.run(command, capture_output=True, text=True, cwd="/tmp")
            if path:
                shutil.rmtree(path, ignore_errors=True)
            if run.returncode != 0:
                sys.exit(f"{label} failed:\n{run.stderr}")
            line = next(l for l in run.stderr.splitlines() if "task-clock" in l)
            results[label].append(float(line.split(",")[0]) * 1000 / workflows)  # ms → µs per workflow
        print(round_number, {label: round(values[-1], 1) for label, values in results.items()}, flush=True)
    first = statistics.median(results[next(iter(builds))])
    for label, values in results.items():
        median = statistics.median(values)
        print(f"{label}: median {median:.1f} µs CPU per workflow (min {min(values):.1f}, max {max(values):.1f}), "
              f"ratio to {next(iter(builds))} {median / first:.3f}")


if __name__ == "__main__":
    main()
