#!/usr/bin/env python3
"""Counts what a `continuum bench` build does per workflow, with uprobes: deterministic where
CPU time on this shared machine is not.

    swift build -c release --product continuum && cp .build/release/continuum /tmp/continuum-new
    tools/counts.py /tmp/continuum-old /tmp/continuum-new        # a row per build
    tools/counts.py --switches /tmp/continuum-new                 # executor checks by function
    tools/counts.py /tmp/continuum-new -- --steps 1 --concurrency 1

The row: `swift_retain`, `swift_release`, `malloc`, `swift_task_switch` (each an executor check,
a locked read of the task's status) and LMDB's B-tree calls, each divided by the number of
workflows (`bench --workflows 20000 --steps 3 --concurrency 1000` unless arguments follow `--`).

`--switches` records every `swift_task_switch` with its first argument, the async function that
resumes after the check, and names those functions from the binary's symbols: which awaits of
the path cost a check, and on which executor (an actor's, or the generic one).

Needs root and `perf` (uprobes). Every probe this script adds is removed when it ends.
"""
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROBES = [
    ("libswiftCore.so", "swift_retain"),
    ("libswiftCore.so", "swift_release"),
    ("libc.so.6", "malloc"),
    ("libswift_Concurrency.so", "swift_task_switch"),
    ("liblmdb.so", "mdb_put"),
    ("liblmdb.so", "mdb_get"),
    ("liblmdb.so", "mdb_del"),
    ("liblmdb.so", "mdb_cursor_get"),
]


def libraries(binary: str) -> dict[str, str]:
    """The shared libraries `binary` loads, by file name, as `ldd` resolves them."""
    found = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        match = re.match(r"\s*(\S+) => (\S+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def library(libs: dict[str, str], prefix: str) -> str:
    for name, path in libs.items():
        if name.startswith(prefix):
            return path
    sys.exit(f"the binary does not load {prefix}")


def perf(*arguments: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(["perf", *arguments], **options)


def remove_probes() -> None:
    perf("probe", "-q", "-d", "probe_*:*", capture_output=True)


def bench(binary: str, extra: list[str], workflows: int, path: str) -> list[str]:
    arguments = extra or ["--steps", "3", "--concurrency", "1000"]
    return [binary, "bench", "--workflows", str(workflows), *arguments, "--json", "--path", path]


def workflow_count(extra: list[str]) -> int:
    if "--workflows" in extra:
        index = extra.index("--workflows")
        count = int(extra[index + 1])
        del extra[index:index + 2]
        return count
    return 20000


def counts(binary: str, extra: list[str], workflows: int) -> dict[str, float]:
    libs = libraries(binary)
    remove_probes()
    events = []
    try:
        for prefix, symbol in PROBES:
            path = library(libs, prefix)
            perf("probe", "-q", "-x", path, symbol, check=True, capture_output=True)
            group = "probe_" + os.path.basename(path).split(".so")[0]
            events.append(f"{group}:{symbol}")
        with tempfile.TemporaryDirectory() as directory:
            result = perf(
                "stat", "-x,", "-e", ",".join(events), *bench(binary, extra, workflows, os.path.join(directory, "store")),
                capture_output=True, text=True)
        values = {}
        for line in result.stderr.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and ":" in fields[2]:
                values[fields[2].split(":")[1]] = float(fields[0]) / workflows
        return values
    finally:
        remove_probes()


def load_segments(binary: str) -> list[tuple[int, int, int]]:
    """(file offset, virtual address, size) of each loadable segment."""
    segments = []
    for line in subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            segments.append((int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)))
    return segments


def switches(binary: str, extra: list[str], workflows: int) -> None:
    concurrency = library(libraries(binary), "libswift_Concurrency.so")
    remove_probes()
    with tempfile.TemporaryDirectory() as directory:
        data = os.path.join(directory, "perf.data")
        try:
            perf("probe", "-q", "-x", concurrency, "swift_task_switch resume=%di:u64 executor=%si:u64", check=True, capture_output=True)
            perf(
                "record", "-q", "-e", "probe_libswift_Concurrency:swift_task_switch", "-o", data,
                *bench(binary, extra, workflows, os.path.join(directory, "store")), capture_output=True, check=True)
        finally:
            remove_probes()
        script = perf("script", "-i", data, "--show-mmap-events", capture_output=True, text=True).stdout
    real = os.path.realpath(binary)
    mappings = []  # (start, end, file offset) of the binary's executable mappings
    checks = collections.Counter()
    for line in script.splitlines():
        mapping = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+|0) .*\]: r-xp (\S+)", line)
        if mapping and os.path.realpath(mapping.group(4)) == real:
            start, size = int(mapping.group(1), 16), int(mapping.group(2), 16)
            mappings.append((start, start + size, int(mapping.group(3), 16)))
            continue
        check = re.search(r"resume=(\d+) executor=(\d+)", line)
        if check:
            checks[(int(check.group(1)), check.group(2) != "0")] += 1
    segments = load_segments(binary)

    def virtual_address(address: int) -> int | None:
        for start, end, offset in mappings:
            if start <= address < end:
                file_offset = address - start + offset
                for segment_offset, vaddr, size in segments:
                    if segment_offset <= file_offset < segment_offset + size:
                        return file_offset - segment_offset + vaddr
        return None

    symbols = []
    for line in subprocess.run(["nm", "-n", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwW":
            symbols.append((int(fields[0], 16), fields[2]))
    starts = [address for address, _ in symbols]

    def symbol(address: int | None) -> str:
        if address is None:
            return "(outside the binary: the concurrency runtime's own)"
        index = bisect.bisect_right(starts, address) - 1
        return symbols[index][1] if index >= 0 else hex(address)

    named = collections.Counter()
    for (resume, on_actor), count in checks.items():
        named[(symbol(virtual_address(resume)), on_actor)] += count
    mangled = sorted({name for name, _ in named})
    demangler = shutil.which("swift-demangle") or "swift-demangle"
    demangled = subprocess.run([demangler, "--simplified", "--compact"], input="\n".join(mangled), capture_output=True, text=True).stdout.splitlines()
    readable = dict(zip(mangled, demangled)) if len(demangled) == len(mangled) else {}
    # A function's partial functions (one per await) demangle to its name: summed.
    by_function = collections.Counter()
    for (name, on_actor), count in named.items():
        by_function[(readable.get(name, name), on_actor)] += count
    total = sum(checks.values()) / workflows
    print(f"{total:.1f} swift_task_switch per workflow, by the function that resumes after each:")
    for (name, on_actor), count in sorted(by_function.items(), key=lambda item: -item[1]):
        if count / workflows >= 0.05:
            print(f"{count / workflows:7.2f}  {'actor  ' if on_actor else 'generic'}  {name[:140]}")


def main() -> None:
    arguments = sys.argv[1:]
    extra: list[str] = []
    if "--" in arguments:
        extra = arguments[arguments.index("--") + 1:]
        arguments = arguments[:arguments.index("--")]
    workflows = workflow_count(extra)
    if not arguments:
        sys.exit(__doc__)
    if arguments[0] == "--switches":
        switches(arguments[1], extra, workflows)
        return
    for binary in arguments:
        values = counts(binary, extra, workflows)
        print("  ".join(f"{name} {value:.1f}" for name, value in values.items()) + f"  {binary}")


if __name__ == "__main__":
    main()
