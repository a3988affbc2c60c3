#!/usr/bin/env bash
# Load benchmark for `idflow serve`: async API invoke of a 3-step flow with `history: all` (the run is
# durable in SQLite before the 202), against a bare axum handler started by this same script. Prints
# req/s, p50 and p99 of both and the ratio. Not part of the test suite.
#
#   bash bench/load.sh            # 10 connections, 10 s each
#   DURATION=30s CONNECTIONS=10 bash bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-10}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }; }
cargo build --release --quiet -p idflow
cargo build --release --quiet -p web --example bare_axum
TARGET=${CARGO_TARGET_DIR:-target}
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

IDFLOW_LOG=warn "$TARGET/release/idflow" serve --flows bench/flows --addr 127.0.0.1:18091 --data "$DATA" --no-reload &
PIDS+=($!)
"$TARGET/release/examples/bare_axum" 127.0.0.1:18090 2>/dev/null &
PIDS+=($!)
for port in 18090 18091; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" -w '%{http_code}' 2>/dev/null | grep -qE '200|404' && break
    sleep 0.1
  done
done

measure() { # name url -> "rps p50_ms p99_ms"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/post.lua "$2")
  local rps p50 p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1 $rps $(to_ms "$p50") $(to_ms "$p99") ${non2xx:-0}"
}
to_ms() { # wrk prints 850.00us, 1.20ms or 1.01s
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); n=float(m.group(1)); print(round(n/1000 if m.group(2)=='us' else n*1000 if m.group(2)=='s' else n,3))" "$1"
}

# Warm up both, then measure.
wrk -t1 -c2 -d2s -s bench/post.lua http://127.0.0.1:18090/api/flows/bench-3/invoke >/dev/null
wrk -t1 -c2 -d2s -s bench/post.lua http://127.0.0.1:18091/api/flows/bench-3/invoke >/dev/null
read -r _ b_rps b_p50 b_p99 _ < <(measure bare http://127.0.0.1:18090/api/flows/bench-3/invoke)
read -r _ i_rps i_p50 i_p99 i_err < <(measure idflow http://127.0.0.1:18091/api/flows/bench-3/invoke)

printf '%-28s %12s %10s %10s\n' "" "req/s" "p50 ms" "p99 ms"
printf '%-28s %12s %10s %10s\n' "bare axum (baseline)" "$b_rps" "$b_p50" "$b_p99"
printf '%-28s %12s %10s %10s\n' "idflow async invoke" "$i_rps" "$i_p50" "$i_p99"
python3 -c "import sys; b,i=float(sys.argv[1]),float(sys.argv[2]); print(f'ratio idflow/bare: {i/b:.1%}  (target >= 20%), non-2xx: {sys.argv[3]}')" "$b_rps" "$i_rps" "$i_err"
