#!/usr/bin/env bash
# Three-step durable workflows/s on one PostgreSQL with 1 and 3 `continuum bench` processes
# sharing one schema, then DBOS Transact on the same server, side by side in one run.
#
#   Benchmarks/postgres/processes.sh [URL]      (default: the throwaway cluster of tools/postgres.sh)
#
# Environment: CONTINUUM (the binary, default .build/release/continuum), WORKFLOWS (per process,
# default 5000), CONCURRENCY (per process, default 500), DBOS_WORKFLOWS (default 1000; 0 skips DBOS).
set -euo pipefail
cd "$(dirname "$0")/../.."
url=${1:-$(bash tools/postgres.sh start)}
bin=${CONTINUUM:-.build/release/continuum}
workflows=${WORKFLOWS:-5000}
concurrency=${CONCURRENCY:-500}
dbos_workflows=${DBOS_WORKFLOWS:-1000}
psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() {  # run PROCESSES: PROCESSES bench processes at once on one new schema
    local processes=$1 schema="bench_p${1}_$RANDOM$RANDOM"
    local named="$url?schema=$schema"
    [[ $url == *\?* ]] && named="$url&schema=$schema"
    # One process creates the schema first, so that three do not migrate it at once.
    "$bin" list --postgres "$named" > /dev/null
    for i in $(seq "$processes"); do
        "$bin" bench --postgres "$named" --workflows "$workflows" --steps 3 --concurrency "$concurrency" --json > "$out/p$processes-$i.json" &
    done
    wait
    "$psql" "$url" -q -c "DROP SCHEMA \"$schema\" CASCADE" > /dev/null
    python3 - "$processes" "$out" <<'PY'
import json, sys, glob
n, out = sys.argv[1], sys.argv[2]
runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/p{n}-*.json"))]
total = sum(r["workflows"] for r in runs)
slowest = max(r["seconds"] for r in runs)
each = ", ".join(f'{r["workflows_per_second"]:.0f}' for r in runs)
cpu = sum(r["cpu_us_per_workflow"] * r["workflows"] for r in runs) / total
p99 = max(r["p99_ms"] for r in runs)
print(json.dumps({"processes": int(n), "workflows": total, "seconds": round(slowest, 2),
                  "workflows_per_second": round(total / slowest), "each": each,
                  "cpu_us_per_workflow": round(cpu), "p99_ms": round(p99, 1)}))
PY
}

run 1
run 3
if [[ $dbos_workflows != 0 ]]; then
    python3 Benchmarks/dbos/three_steps.py --url "$url" --workflows "$dbos_workflows" --concurrency 64 --json
fi
