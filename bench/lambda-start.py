#!/usr/bin/env python3
"""Cold start of a function binary (not a test): process start -> first invocation ready.

Plays the Lambda Runtime API (the protocol `lambda_runtime` speaks) on 127.0.0.1, starts the
binary with the environment of an env file (see tests/examples/lambda_stack.rs), and measures the
time from process start to the binary's first `GET /runtime/invocation/next`: configuration read,
SDK clients built, project configuration loaded from DynamoDB. Then it hands the binary one event
and prints the answer.

    python3 bench/lambda-start.py target/release/api /tmp/idflow-lambda.env events/api-invoke.json
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

PREFIX = "/2018-06-01/runtime"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, env_file, event_file = sys.argv[1:]
    with open(event_file, "rb") as f:
        event = f.read()
    env = dict(os.environ)
    with open(env_file) as f:
        for line in f:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                env[key] = value

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
    print(f"{os.path.basename(binary)}: process start -> first invocation ready: {ready_ms:.0f} ms")
    if state["error"] is not None:
        sys.exit("invocation error: " + state["error"].decode(errors="replace"))
    print("answer:", state["response"].decode(errors="replace"))


if __name__ == "__main__":
    main()
