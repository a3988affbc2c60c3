#!/usr/bin/env bash
# Sync API latency of `idflow serve`: a 3-step `respond: sync` flow with `history: all` (the run is
# durable in SQLite before its steps run, and answered when it ends), against a bare axum handler
# measured in the same run. Prints req/s, p50 and p99 of each and the ratios. Not part of the tests.
#
#   bash bench/sync-latency.sh                       # builds idflow and bare_axum (release)
#   IDFLOW=path/to/idflow BARE=path/to/bare_axum bash bench/sync-latency.sh
#   BEFORE=path/to/older/idflow bash bench/sync-latency.sh   # also measures an older build
#   DURATION=30s CONNECTIONS=10 bash bench/sync-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-10}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${IDFLOW:-}" ]; then cargo build --release --quiet -p idflow; IDFLOW="$TARGET/release/idflow"; fi
if [ -z "${BARE:-}" ]; then cargo build --release --quiet -p web --example bare_axum; BARE="$TARGET/release/examples/bare_axum"; fi
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

serve() { # binary port
  mkdir -p "$DATA/$2"
  IDFLOW_LOG=warn "$1" serve --flows bench/sync-flows --addr "127.0.0.1:$2" --data "$DATA/$2" --no-reload &
  PIDS+=($!)
}
"$BARE" 127.0.0.1:18190 2>/dev/null &
PIDS+=($!)
serve "$IDFLOW" 18191
PORTS="18190 18191"
if [ -n "${BEFORE:-}" ]; then serve "$BEFORE" 18192; PORTS="$PORTS 18192"; fi
for port in $PORTS; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" -w '%{http_code}' 2>/dev/null | grep -qE '200|404' && break
    sleep 0.1
  done
done

to_ms() { # wrk prints 850.00us, 1.20ms or 1.01s
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); n=float(m.group(1)); print(round(n/1000 if m.group(2)=='us' else n*1000 if m.group(2)=='s' else n,3))" "$1"
}
measure() { # port -> "rps p50_ms p99_ms non2xx"
  local url="http://127.0.0.1:$1/api/flows/bench-sync-3/invoke" out
  wrk -t1 -c2 -d2s -s bench/post.lua "$url" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/post.lua "$url")
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')")" \
    "$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")" \
    "$(echo "$out" | awk '/Non-2xx/ {print $5}' | grep . || echo 0)"
}

printf '%-32s %12s %10s %10s %8s\n' "" "req/s" "p50 ms" "p99 ms" "non-2xx"
read -r b_rps b_p50 b_p99 b_err < <(measure 18190)
printf '%-32s %12s %10s %10s %8s\n' "bare axum (baseline)" "$b_rps" "$b_p50" "$b_p99" "$b_err"
read -r i_rps i_p50 i_p99 i_err < <(measure 18191)
printf '%-32s %12s %10s %10s %8s\n' "idflow sync invoke" "$i_rps" "$i_p50" "$i_p99" "$i_err"
python3 -c "import sys; b,i=float(sys.argv[1]),float(sys.argv[2]); print(f'ratio idflow/bare: {i/b:.1%}')" "$b_rps" "$i_rps"
if [ -n "${BEFORE:-}" ]; then
  read -r o_rps o_p50 o_p99 o_err < <(measure 18192)
  printf '%-32s %12s %10s %10s %8s\n' "idflow sync invoke (BEFORE)" "$o_rps" "$o_p50" "$o_p99" "$o_err"
  python3 -c "import sys; b,o=float(sys.argv[1]),float(sys.argv[2]); print(f'ratio before/bare: {o/b:.1%}')" "$b_rps" "$o_rps"
fi
