#!/usr/bin/env bash
# The test run of `make test`, after its build: starts the throwaway PostgreSQL
# (tools/postgres.sh), runs `swift test --skip-build` with its URL in CONTINUUM_POSTGRES_URL, and
# afterwards kills every process the run left behind.
#
#   tools/test.sh [swift test arguments…]     e.g. tools/test.sh --filter CrashTests
#
# The tests start real child processes (crash workers, `continuum serve`, headless Chromium)
# that write to this run's output. A test kills its own, but when the test process itself dies
# (a crash, a SIGKILL, a parent that lost track of it) they live on, and whatever reads the
# output to its end — a CI runner — waits for them for as long as they run. So the tests run in
# a session of their own (setsid; the children stay in it, each in a process group of its own),
# and when the run ends, passed or failed, whatever still runs in that session is killed.
# A PostgreSQL server a test starts detaches itself (pg_ctl puts it in a session of its own) and
# writes only to its log, so it holds nothing open and is left to tools/postgres.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

url=$(tools/postgres.sh start)
export CONTINUUM_POSTGRES_URL=$url

# In a non-interactive shell a background job is no process group leader, so setsid makes the
# session at once, without forking: the job's pid is the session's id.
setsid "${SWIFT:-swift}" test --skip-build "$@" &
session=$!
trap 'pkill -KILL -s "$session" 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0
wait "$session" || status=$?
exit "$status"
