#!/usr/bin/env python3
"""Cold start of a function binary (not a test): process start -> first invocation ready.

Plays the Lambda Runtime API (the protocol `lambda_runtime` speaks) on 127.0.0.1, starts the
binary with the environment of an env file (see tests/examples/lambda_stack.rs), and measures the
time from process start to the binary's first `GET /runtime/invocation/next`: configuration read,
SDK clients built, project configuration loaded from DynamoDB. Then it hands the binary one event
and prints the answer.

    python3 bench/lambda-start.py target/release/api /tmp/idflow-lambda.env events/api-invoke.json

With `--baseline OTHER_BINARY` (the same function built from another commit), it starts the two
binaries in turn, `--rounds` times each (default 7), and prints each one's median with the ratio
of the binary's median to the baseline's, so both are measured on the same machine, moto and file
cache in the same run:

    python3 bench/lambda-start.py --baseline /tmp/main/release/api target/release/api \
        /tmp/idflow-lambda.env events/api-invoke.json
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

PREFIX = "/2018-06-01/runtime"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("env_file")
    parser.add_argument("event_file")
    parser.add_argument("--baseline", help="the same function built from another commit")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with open(args.event_file, "rb") as f:
        event = f.read()
    env = dict(os.environ)
    with open(args.env_file) as f:
        for line in f:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                env[key] = value

    if args.baseline is None:
        ready_ms, response = start_once(args.binary, env, event)
        name = os.path.basename(args.binary)
        print(f"{name}: process start -> first invocation ready: {ready_ms:.0f} ms")
        print("answer:", response.decode(errors="replace"))
        return
    times = {args.binary: [], args.baseline: []}
    # Alternating, so that a change in the machine's load during the run reaches both alike; the
    # first start of each warms the file cache and is not counted.
    for counted in [False] + [True] * args.rounds:
        for binary in (args.baseline, args.binary):
            ready_ms, response = start_once(binary, env, event)
            if counted:
                times[binary].append(ready_ms)
    print("answer:", response.decode(errors="replace"))
    baseline = statistics.median(times[args.baseline])
    measured = statistics.median(times[args.binary])
    for binary, label in ((args.baseline, "baseline"), (args.binary, "binary")):
        ms = ", ".join(f"{t:.0f}" for t in times[binary])
        print(f"{label} {binary}: median {statistics.median(times[binary]):.1f} ms ({ms})")
    print(f"ratio (binary / baseline): {measured / baseline:.2f}")


def start_once(binary, env, event):
    """Starts `binary` under a fresh Runtime API, hands it `event`; returns (ready ms, answer)."""
    env = dict(env)
    state = {"first_next": None, "served": False, "response": None, "error": None}
    done = threading.Event()

    class RuntimeApi(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != PREFIX + "/invocation/next":
                self.send_error(404)
                return
            if state["first_next"] is None:
                state["first_next"] = time.perf_counter()
            if state["served"]:
                # Hold the second long poll until the harness stops.
                done.wait(30)
                self.send_error(503)
                return
            state["served"] = True
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-request-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:idflow-bench",
            )
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(event)))
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if self.path.endswith("/response"):
                state["response"] = body
            else:
                state["error"] = body
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            done.set()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "idflow-bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }
    )
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not done.wait(60):
            sys.exit("no answer within 60 s: " + process.stderr.read1().decode(errors="replace"))
    finally:
        process.kill()
        process.wait()
        server.shutdown()
    if state["first_next"] is None:
        sys.exit("the binary never asked for an invocation")
    ready_ms = (state["first_next"] - started) * 1000
    # An invocation error is an answer too (the function was ready to take it); it is shown as
    # such, and the start is measured all the same.
    if state["error"] is not None:
        return ready_ms, b"invocation error: " + state["error"]
    return ready_ms, state["response"]


if __name__ == "__main__":
    main()
