#!/usr/bin/env python3
"""Lists the async frame ("context") size of Continuum's async functions in a binary.

Every call of an async function allocates its frame from the task's allocator; what the frame
holds across its awaits lives there for as long as the call runs. A large frame on the step path
costs CPU on every step (fresh memory touched, task-allocator slabs from malloc), so this is a
noise-free measure to watch next to the CPU benchmarks.

    swift build -c release --product continuum
    tools/async-frames.py .build/release/continuum 40

Reads each `…Tu` symbol (the async function pointer: a relative offset, then the context size).
"""
import struct
import subprocess
import sys


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary, limit = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    symbols = [line.split() for line in subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout.splitlines()]
    pointers = [(int(parts[0], 16), parts[2]) for parts in symbols if len(parts) == 3 and parts[2].endswith("Tu") and "Continuum" in parts[2]]
    sections = []
    for line in subprocess.run(["objdump", "-h", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[0].isdigit():
            sections.append((int(parts[3], 16), int(parts[2], 16), int(parts[5], 16)))  # address, size, file offset
    data = open(binary, "rb").read()
    sizes = []
    for address, name in pointers:
        for start, size, offset in sections:
            if start <= address < start + size:
                _, context = struct.unpack("<iI", data[offset + address - start: offset + address - start + 8])
                sizes.append((context, name))
                break
    sizes.sort(reverse=True)
    shown = sizes[:limit]
    names = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(name for _, name in shown),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for (context, _), name in zip(shown, names):
        print(f"{context:6d}  {name.removeprefix('async function pointer to ')}")


if __name__ == "__main__":
    main()
