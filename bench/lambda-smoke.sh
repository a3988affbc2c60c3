#!/usr/bin/env bash
# Smoke test of the Lambda functions under cargo lambda's local runtime emulator (not part of the
# test suite): creates a stack on the AWS emulator (moto, AWS_ENDPOINT_URL, default
# http://127.0.0.1:5005), starts `cargo lambda watch`, invokes the `api` function with
# events/api-invoke.json and events/admin-list-runs.json and checks the answers.
#
#   bench/lambda-smoke.sh
#
# Skips (exit 0) when cargo-lambda is not installed (`pip install cargo-lambda`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-lambda >/dev/null; then
  echo "SKIPPED: cargo-lambda is not installed (pip install cargo-lambda)"
  exit 0
fi
ENDPOINT="${AWS_ENDPOINT_URL:-http://127.0.0.1:5005}"
HOSTPORT="${ENDPOINT#http://}"
if ! (exec 3<>"/dev/tcp/${HOSTPORT%:*}/${HOSTPORT##*:}") 2>/dev/null; then
  echo "no AWS emulator at $ENDPOINT (start one with: python -m moto.server -H 127.0.0.1 -p 5005)" >&2
  exit 1
fi
PORT="${PORT:-9123}"
WORK="$(mktemp -d)"
ENV_FILE="$WORK/lambda.env"

AWS_ENDPOINT_URL="$ENDPOINT" cargo run --quiet -p tests --example lambda_stack -- "$ENV_FILE"

cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$PORT" --env-file "$ENV_FILE" \
  -p api >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
trap 'kill "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  sleep 0.2
done

invoke() {
  # The first invocation compiles the function; cargo lambda waits for it.
  cargo lambda invoke api --invoke-address 127.0.0.1 --invoke-port "$PORT" \
    --data-file "$1" --output-format json
}

check() {
  local file="$1" expected="$2" answer
  answer="$(invoke "$file")" || { echo "FAIL: invoking with $file"; cat "$WORK/watch.log"; exit 1; }
  python3 - "$expected" "$answer" "$file" <<'EOF'
import json, sys
expected, answer, file = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
status = answer.get("statusCode")
if status != expected:
    sys.exit(f"FAIL: {file}: status {status}, expected {expected}: {answer}")
print(f"ok: {file} -> {status} {answer.get('body')}")
EOF
}

check events/api-invoke.json 202
check events/admin-list-runs.json 200
echo "lambda smoke test passed"
