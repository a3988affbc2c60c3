#!/usr/bin/env bash
# Load benchmark for `idflow serve` with history (`history: all`), against a bare axum handler
# started by this same script (the baseline, storing nothing):
#
# - async invoke: POST to a 3-step flow answered 202 once the run is durable in SQLite;
# - sync end to end: POST to a 3-step flow answered with the flow's own result (`respond: sync`),
#   so the request covers intake, the worker running the steps, their history and the answer.
#
# Each round measures bare axum, then async, then sync (waiting for the queue to drain between
# them, so runs accepted by one measurement do not run during the next); the table shows req/s, p50
# and p99 of every measurement and its ratio against the bare axum figure of the same round, then
# the median ratios against the targets of issue 17. With BEFORE=<path of another idflow binary>, that
# binary is measured too, in the same rounds, on its own data directory (before/after comparisons
# on a busy machine). Not part of the test suite.
#
#   bash bench/load.sh                        # 3 rounds, 10 connections, 10 s each
#   ROUNDS=1 DURATION=30s CONNECTIONS=10 bash bench/load.sh
#   BEFORE=/tmp/idflow-old bash bench/load.sh
#   IDFLOW=/tmp/idflow-new BEFORE=/tmp/idflow-old bash bench/load.sh   # binaries given: no build
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-10}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BEFORE=${BEFORE:-}
IDFLOW=${IDFLOW:-}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }; }
# `idflow serve` does not use the `aws` feature (only `idflow deploy` does); leaving it out halves the
# release build and changes nothing on the measured path.
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "$IDFLOW" ]; then
  cargo build --release --quiet -p idflow --no-default-features --bin idflow
  cargo build --release --quiet -p web --example bare_axum
  IDFLOW=$TARGET/release/idflow
fi
[ -x "$TARGET/release/examples/bare_axum" ] || cargo build --release --quiet -p web --example bare_axum
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DATA"; }
trap cleanup EXIT

BARE=127.0.0.1:18090
NOW=127.0.0.1:18091
OLD=127.0.0.1:18092
IDFLOW_LOG=warn "$IDFLOW" serve --flows bench/flows --addr "$NOW" --data "$DATA/now" --no-reload &
PIDS+=($!)
"$TARGET/release/examples/bare_axum" "$BARE" 2>/dev/null &
PIDS+=($!)
SERVERS=("$BARE" "$NOW")
if [ -n "$BEFORE" ]; then
  IDFLOW_LOG=warn "$BEFORE" serve --flows bench/flows --addr "$OLD" --data "$DATA/old" --no-reload &
  PIDS+=($!)
  SERVERS+=("$OLD")
fi
for addr in "${SERVERS[@]}"; do
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://$addr/healthz" -w '%{http_code}' 2>/dev/null | grep -qE '200|404' && break
    sleep 0.1
  done
done

to_ms() { # wrk prints 850.00us, 1.20ms or 1.01s
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); n=float(m.group(1)); print(round(n/1000 if m.group(2)=='us' else n*1000 if m.group(2)=='s' else n,3))" "$1"
}

measure() { # url -> "rps p50_ms p99_ms non2xx"
  local out rps p50 p99 non2xx
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/post.lua "$1")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${non2xx:-0}"
}

queued() { # addr -> runs waiting for a worker (ready messages). Hidden messages are not counted:
  # a sync invoke's fallback message stays hidden for the lease while its invoker drives the run (it
  # is deleted with the run's end), so counting one whose run outlived its timeout would wait out
  # the lease.
  curl -s "http://$1/metrics" | awk '/^idflow_queue_depth\{state="ready"\}/ {n += $2} END {print n + 0}'
}

drain() { # addr -> seconds until the queue was empty (the backlog async intake left behind)
  local start=$SECONDS
  while [ "$(queued "$1")" != "0" ]; do sleep 0.2; done
  echo $((SECONDS - start))
}

# Warm up every server and both flows, then let the warm-up runs finish.
for addr in "${SERVERS[@]}"; do
  for flow in bench-3 bench-sync; do
    wrk -t1 -c2 -d2s -s bench/post.lua "http://$addr/api/flows/$flow/invoke" >/dev/null
  done
done
for addr in "${SERVERS[@]:1}"; do drain "$addr" >/dev/null; done

RESULTS=$(mktemp)
row() { # label round rps p50 p99 non2xx base_rps [backlog drain_s]
  printf '%-26s %5s %10s %8s %8s %7s %8s %9s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
    "$(python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.1%}')" "$3" "$7")" "${8:-}"
  echo "$1 $2 $3 $4 $5 $6 $7" >>"$RESULTS"
}

printf '%-26s %5s %10s %8s %8s %7s %8s %9s\n' "" "round" "req/s" "p50 ms" "p99 ms" "non-2xx" "vs bare" "backlog"
for round in $(seq 1 "$ROUNDS"); do
  read -r b_rps b_p50 b_p99 b_err < <(measure "http://$BARE/api/flows/bench-3/invoke")
  row "bare axum (baseline)" "$round" "$b_rps" "$b_p50" "$b_p99" "$b_err" "$b_rps"
  targets=("$NOW:idflow")
  [ -n "$BEFORE" ] && targets+=("$OLD:before")
  for target in "${targets[@]}"; do
    addr=${target%:*}; name=${target##*:}
    read -r rps p50 p99 err < <(measure "http://$addr/api/flows/bench-3/invoke")
    left=$(queued "$addr"); took=$(drain "$addr")
    row "$name async invoke" "$round" "$rps" "$p50" "$p99" "$err" "$b_rps" "$left/${took}s"
    read -r rps p50 p99 err < <(measure "http://$addr/api/flows/bench-sync/invoke")
    row "$name sync end to end" "$round" "$rps" "$p50" "$p99" "$err" "$b_rps"
  done
done

# Medians over the rounds, against the targets of issue 17 (async >= 20 %, sync >= 8 % of bare axum,
# p99 under 10 ms at 10 connections for both).
python3 - "$RESULTS" "$CONNECTIONS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    *label, rnd, rps, p50, p99, err, base = line.split()
    rows.setdefault(" ".join(label), []).append((float(rps) / float(base), float(p50), float(p99), int(err)))
targets = {"async invoke": 0.20, "sync end to end": 0.08}
print(f"\nmedians over {len(next(iter(rows.values())))} round(s), {sys.argv[2]} connections:")
for label, values in rows.items():
    if label.startswith("bare"):
        continue
    ratio = statistics.median(v[0] for v in values)
    p50 = statistics.median(v[1] for v in values)
    p99 = statistics.median(v[2] for v in values)
    errors = sum(v[3] for v in values)
    goal = next(t for k, t in targets.items() if label.endswith(k))
    verdict = "met" if ratio >= goal and p99 < 10 else "NOT met"
    print(f"  {label:<26} {ratio:6.1%} of bare (target >= {goal:.0%}), p50 {p50} ms, p99 {p99} ms "
          f"(target < 10 ms), non-2xx {errors}: {verdict}")
PY
rm -f "$RESULTS"
