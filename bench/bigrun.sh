#!/usr/bin/env bash
# Bytes written by the big run (issue 17): a flow that reads 5,000 users from okta-sim, maps them,
# then reads 300 of them one by one (300 effectful steps, 300 checkpoints). Measured in one run, on
# the same okta-sim, with the runtime keeping every value inline in each checkpoint (how idflow
# checkpointed before values went out of line: the baseline) and with values out of line, on SQLite
# and, when the AWS emulator answers on AWS_ENDPOINT_URL (default http://127.0.0.1:5005), on
# DynamoDB+SQS(+S3). Each is printed in MB and as a ratio against the step data's size.
#
# The bytes are what the stores are asked to write (state, step records, values out of line, run
# input and output as JSON), counted by decorators around the real adapters; they do not depend on
# optimisation, so this runs the test profile and builds nothing in release.
#
#   bash bench/bigrun.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:5005}
cargo test -q -p tests --test integration bench_bytes_written_by_the_big_run -- --ignored --nocapture 2>&1 \
  | grep -v '^running\|^test result\|^$\|^\.'

# The per-checkpoint bytes of a `map` over 5,000 users (one effectful step per iteration): the
# state each checkpoint writes, at 10% of the iterations and at the end.
cargo test -q -p domain --test map_checkpoints -- --nocapture 2>&1 | grep "^map over"
