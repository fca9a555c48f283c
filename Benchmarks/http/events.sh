#!/usr/bin/env bash
# Durable event deliveries over HTTP on loopback: `continuum serve` (release) with WORKFLOWS
# purchase approvals waiting, and wrk posting events (each committed before its 202).
#   bash Benchmarks/http/events.sh            # WORKFLOWS=1000 CONNECTIONS=64 DURATION=20 (seconds)
#   CONTINUUM=/path/to/continuum bash Benchmarks/http/events.sh   # that build, not this checkout's
# Ends with the server's CPU time (user + system, from /proc) per delivery while wrk ran: on a
# machine whose cores server and wrk share, that is what decides the rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORKFLOWS=${WORKFLOWS:-1000} CONNECTIONS=${CONNECTIONS:-64} DURATION=${DURATION:-20} PORT=${PORT:-8097}
command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
if [ -z "${CONTINUUM:-}" ]; then
  swift build -c release --product continuum 2>/dev/null | tail -1
  CONTINUUM=.build/release/continuum
fi
STATE=$(mktemp -d)
"$CONTINUUM" serve --path "$STATE" --port "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$STATE"' EXIT
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do sleep 0.1; done
# One start per workflow; `next` separates each URL's options in a curl config.
for i in $(seq 0 $((WORKFLOWS - 1))); do
  [ "$i" -gt 0 ] && echo 'next'
  echo "url = \"http://127.0.0.1:$PORT/v1/workflows/purchase-approval?id=po-$i\""
  echo 'data = "{\"item\": \"load\", \"amount\": 1}"'
done > "$STATE/starts.curl"
curl -sf --no-progress-meter --parallel --parallel-max 32 -K "$STATE/starts.curl" >/dev/null
# utime + stime of the server, in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
# name before them has no spaces).
ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
BEFORE=$(ticks)
WORKFLOWS=$WORKFLOWS wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s Benchmarks/http/events.lua "http://127.0.0.1:$PORT" | tee "$STATE/wrk.out"
AFTER=$(ticks)
REQUESTS=$(awk '/^requests / { gsub(",", "", $2); print $2 }' "$STATE/wrk.out")
awk -v t=$((AFTER - BEFORE)) -v hz="$(getconf CLK_TCK)" -v n="$REQUESTS" \
  'BEGIN { printf "server CPU %.2f s, %.1f us per delivery\n", t / hz, t / hz * 1e6 / n }'
