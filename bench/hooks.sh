#!/usr/bin/env bash
# Event hook intake benchmark for `idflow serve`: Okta-style deliveries of 10 events each to
# POST /hooks/okta (secret checked, every event deduplicated and durably queued as a run before the
# 200, the runs executing meanwhile), against the bare axum baseline's /hooks/okta (parse only).
# Prints req/s, p99 and events/s of both. Not part of the test suite.
#
#   bash bench/hooks.sh            # 10 connections, 10 s each
#   DURATION=30s CONNECTIONS=10 bash bench/hooks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-10}
THREADS=${THREADS:-2}
export BENCH_HOOK_SECRET=${BENCH_HOOK_SECRET:-bench-hook-secret}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }; }
cargo build --release --quiet -p idflow
cargo build --release --quiet -p web --example bare_axum
TARGET=${CARGO_TARGET_DIR:-target}
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

IDFLOW_LOG=warn "$TARGET/release/idflow" serve --flows bench/hook-flows --addr 127.0.0.1:18093 --data "$DATA" --no-reload &
PIDS+=($!)
"$TARGET/release/examples/bare_axum" 127.0.0.1:18092 2>/dev/null &
PIDS+=($!)
for port in 18092 18093; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" -w '%{http_code}' 2>/dev/null | grep -qE '200|404' && break
    sleep 0.1
  done
done

to_ms() { # wrk prints 850.00us, 1.20ms or 1.01s
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); n=float(m.group(1)); print(round(n/1000 if m.group(2)=='us' else n*1000 if m.group(2)=='s' else n,3))" "$1"
}
measure() { # name url -> "rps p50_ms p99_ms non2xx"
  local out rps p50 p99 non2xx
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/hooks.lua "$2")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1 $rps $(to_ms "$p50") $(to_ms "$p99") ${non2xx:-0}"
}

wrk -t1 -c2 -d2s -s bench/hooks.lua http://127.0.0.1:18092/hooks/okta >/dev/null
wrk -t1 -c2 -d2s -s bench/hooks.lua http://127.0.0.1:18093/hooks/okta >/dev/null
read -r _ b_rps b_p50 b_p99 _ < <(measure bare http://127.0.0.1:18092/hooks/okta)
read -r _ i_rps i_p50 i_p99 i_err < <(measure idflow http://127.0.0.1:18093/hooks/okta)

printf '%-30s %10s %10s %10s %10s\n' "" "req/s" "events/s" "p50 ms" "p99 ms"
python3 - "$b_rps" "$b_p50" "$b_p99" "$i_rps" "$i_p50" "$i_p99" "$i_err" <<'PY'
import sys
b_rps, b_p50, b_p99, i_rps, i_p50, i_p99 = map(float, sys.argv[1:7])
print(f"{'bare axum /hooks/okta':30} {b_rps:10.0f} {b_rps*10:10.0f} {b_p50:10.3f} {b_p99:10.3f}")
print(f"{'idflow /hooks/okta (10/batch)':30} {i_rps:10.0f} {i_rps*10:10.0f} {i_p50:10.3f} {i_p99:10.3f}")
print(f"ratio idflow/bare: {i_rps/b_rps:.1%}, non-2xx: {sys.argv[7]}")
PY
