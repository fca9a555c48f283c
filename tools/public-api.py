#!/usr/bin/env python3
"""Lists the public symbols of the library modules, to review what a change adds or removes.

    swift package dump-symbol-graph --minimum-access-level public
    tools/public-api.py .build/x86_64-unknown-linux-gnu/symbolgraph > Documentation/PublicAPI.txt

One line per symbol: module, kind, path, declaration (the precise identifier is left out so that
the file diffs by what a reader sees). "+inherited" marks members that protocol extensions add.
"""
import collections
import glob
import json
import os
import re
import sys

MODULES = ["Continuum", "ContinuumLMDB", "ContinuumPostgres", "ContinuumTesting", "ContinuumHTTP", "ContinuumMacros", "ContinuumServer"]


def declaration(symbol: dict) -> str:
    return re.sub(r"\s+", " ", "".join(f["spelling"] for f in symbol.get("declarationFragments", []))).strip()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = set()
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.symbols.json"))):
        module, _, extended = os.path.basename(path)[: -len(".symbols.json")].partition("@")
        if module not in MODULES:
            continue
        for symbol in json.load(open(path))["symbols"]:
            if symbol.get("accessLevel") not in ("public", "open"):
                continue
            kind = symbol["kind"]["identifier"].removeprefix("swift.")
            if "::SYNTHESIZED::" in symbol["identifier"]["precise"]:
                kind += "+inherited"
            name = ".".join(symbol["pathComponents"])
            rows.add((module, kind, f"[ext {extended}] {name}" if extended else name, declaration(symbol)))
    rows = sorted(rows, key=lambda r: (MODULES.index(r[0]), r[2], r[1], r[3]))
    counts = collections.Counter(r[0] for r in rows)
    declared = collections.Counter(r[0] for r in rows if not r[1].endswith("+inherited"))
    print(f"# Public API: {len(rows)} symbols ({sum(declared.values())} declared, {len(rows) - sum(declared.values())} from protocol extensions)")
    print("# Made by tools/public-api.py from `swift package dump-symbol-graph --minimum-access-level public`.")
    for module in MODULES:
        print(f"#   {module:17} {counts[module]:4} ({declared[module]} declared)")
    for row in rows:
        print("\t".join(row))


if __name__ == "__main__":
    main()
