"""Three-step durable workflows on DBOS Transact (Python), for a side-by-side figure with
`continuum bench --postgres` on the same PostgreSQL server.

    pip install dbos
    python3 Benchmarks/dbos/three_steps.py --url "$(tools/postgres.sh start)" --workflows 2000 --concurrency 64 [--json]

Each workflow runs three steps that return a number, as the Continuum bench's steps scenario
does. DBOS records each step and the workflow in its system database (a database of its own,
created by DBOS on the same server). Reports workflows/s and CPU seconds of this process.
"""
import argparse
import json
import resource
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from dbos import DBOS, DBOSConfig, SetWorkflowID

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True, help="postgres://user:password@host:port/database")
parser.add_argument("--workflows", type=int, default=2000)
parser.add_argument("--concurrency", type=int, default=64)
parser.add_argument("--json", action="store_true")
args = parser.parse_args()

system_database = args.url.rsplit("/", 1)[0] + "/dbos_bench_" + uuid.uuid4().hex[:8]
config: DBOSConfig = {"name": "continuum-compare", "system_database_url": system_database}
DBOS(config=config)


@DBOS.step()
def step_a(value: int) -> int:
    return value + 1


@DBOS.step()
def step_b(value: int) -> int:
    return value * 2


@DBOS.step()
def step_c(value: int) -> int:
    return value - 1


@DBOS.workflow()
def three_steps(value: int) -> int:
    return step_c(step_b(step_a(value)))


def run_one(index: int) -> int:
    with SetWorkflowID(f"w{index}-{uuid.uuid4().hex[:8]}"):
        return three_steps(index)


DBOS.launch()
run_one(-1)  # warm up: connections, prepared statements
usage_before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
    results = list(pool.map(run_one, range(args.workflows)))
elapsed = time.perf_counter() - start
usage_after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
assert results == [(i + 1) * 2 - 1 for i in range(args.workflows)], "wrong results"
report = {
    "engine": "dbos-transact-py",
    "workflows": args.workflows,
    "concurrency": args.concurrency,
    "seconds": round(elapsed, 3),
    "workflows_per_second": round(args.workflows / elapsed, 1),
    "cpu_us_per_workflow": round(cpu / args.workflows * 1e6, 1),
}
DBOS.destroy()
# Drop the system database DBOS created for this run.
import sqlalchemy  # noqa: E402 (a DBOS dependency)

engine = sqlalchemy.create_engine(args.url.replace("postgres://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
with engine.connect() as connection:
    connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{system_database.rsplit("/", 1)[1]}" WITH (FORCE)'))
engine.dispose()
if args.json:
    print(json.dumps(report))
else:
    print(f"DBOS: {args.workflows} three-step workflows in {elapsed:.2f} s: {report['workflows_per_second']} workflows/s, "
          f"{report['cpu_us_per_workflow']} µs CPU per workflow (this process; the server's is not counted)")
