#!/usr/bin/env bash
# Instructions per request of `idflow serve`, counted by callgrind: repeatable on a busy machine,
# where req/s are not. For each binary (IDFLOW, and BEFORE when given) and each bench flow, starts
# the server under callgrind, warms it up, zeroes the counters, sends N requests one after the
# other on one keep-alive connection, waits for the queue to drain (the async runs' worker side),
# dumps the counters and prints the instructions per request (server threads only; the client is
# a separate process). Not part of the test suite.
#
#   IDFLOW=target/release/idflow BEFORE=/tmp/idflow-old N=500 bash bench/instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
IDFLOW=${IDFLOW:-target/release/idflow}
BEFORE=${BEFORE:-}
command -v valgrind >/dev/null || { echo "valgrind is required"; exit 1; }
ADDR=127.0.0.1:18097
post() { # flow count: sequential POSTs on one connection
  python3 - "$ADDR" "$1" "$2" <<'PY'
import http.client, sys
addr, flow, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = addr.split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=60)
body = '{"user":{"login":"ada@example.com","firstName":"Ada"},"groups":["eng","ops"]}'
for _ in range(n):
    conn.request("POST", f"/api/flows/{flow}/invoke", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    assert response.status in (200, 202), response.status
PY
}
ready() { curl -s "http://$ADDR/metrics" | awk '/^idflow_queue_depth\{state="ready"\}/ {n += $2} END {print n + 0}'; }
measure() { # binary flow -> instructions per request
  local dir out pid
  dir=$(mktemp -d)
  IDFLOW_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
    "$1" serve --flows bench/flows --addr "$ADDR" --data "$dir/data" --no-reload >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://$ADDR/healthz" && break; sleep 0.1; done
  post "$2" 50
  while [ "$(ready)" != "0" ]; do sleep 0.5; done
  callgrind_control -z "$pid" >/dev/null 2>&1
  post "$2" "$N"
  while [ "$(ready)" != "0" ]; do sleep 0.5; done
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The dump (`cg.<pid>.1`) holds the counts since the zeroing; the file written at exit holds the
  # shutdown's, which are left out.
  out=$(cat "$dir"/cg.*.1 | awk '/^summary:/ {s += $2} END {print s}')
  rm -rf "$dir"
  python3 -c "import sys; print(round(int(sys.argv[1]) / int(sys.argv[2])))" "$out" "$N"
}
printf '%-10s %16s %16s\n' "" "async (Ir/req)" "sync (Ir/req)"
for target in "idflow:$IDFLOW" ${BEFORE:+"before:$BEFORE"}; do
  name=${target%%:*}; binary=${target#*:}
  printf '%-10s %16s %16s\n' "$name" "$(measure "$binary" bench-3)" "$(measure "$binary" bench-sync)"
done
