// End-to-end tests of the idflow console: a real `idflow serve` (the built binary) with the example
// flows plus a failing flow, driven in Debian's headless Chromium through playwright-core.
//
//   IDFLOW_BIN=path/to/idflow  (default: $CARGO_TARGET_DIR or ../../target, then debug/idflow)
//   CHROMIUM=/usr/bin/chromium (default)
// Without Chromium the tests are skipped, except under CI=true where that is a failure.
// Screenshots of every page go to artifacts/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const artifacts = path.join(here, "artifacts");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, "target");
const bin = process.env.IDFLOW_BIN || path.join(targetDir, "debug", "idflow");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const TOKEN = "console-test-admin-token";

const haveChromium = fs.existsSync(chromiumPath);
if (!haveChromium && process.env.CI === "true") {
  throw new Error(`${chromiumPath} is missing: CI must install Debian's chromium package`);
}
const skip = haveChromium ? false : `no Chromium at ${chromiumPath}`;

let server, base, browser, page, dir;
const runs = {};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function api(method, url, body) {
  const response = await fetch(base + url, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  assert.ok(response.ok, `${method} ${url}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** Starts a run and long-polls it until it ends. */
async function runToEnd(flow, input) {
  const { runId } = await api("POST", `/api/flows/${flow}/runs`, input);
  for (let i = 0; i < 5; i++) {
    const run = await api("GET", `/api/runs/${runId}?wait=30`);
    if (["succeeded", "failed", "cancelled"].includes(run.status)) return run;
  }
  throw new Error(`run ${runId} of ${flow} did not end`);
}

async function shot(name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

before(async () => {
  if (skip) return;
  assert.ok(fs.existsSync(bin), `build the binary first: ${bin} is missing (cargo build -p idflow)`);
  fs.mkdirSync(artifacts, { recursive: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "idflow-console-"));
  const flows = path.join(dir, "flows");
  fs.mkdirSync(flows);
  const examples = path.join(root, "examples", "flows");
  fs.cpSync(examples, flows, { recursive: true }); // flows, tests, idflow.yaml and tables/
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  fs.copyFileSync(path.join(here, "fixtures", "okta-stub.yaml"), path.join(flows, "okta-stub.yaml"));
  fs.copyFileSync(path.join(here, "fixtures", "nesting.yaml"), path.join(flows, "nesting.yaml"));
  fs.copyFileSync(path.join(here, "fixtures", "suspicious.yaml"), path.join(flows, "suspicious.yaml"));
  const lookup = fs.readFileSync(path.join(here, "fixtures", "lookup-user.yaml"), "utf8");
  fs.writeFileSync(path.join(flows, "lookup-user.yaml"), lookup.replaceAll("__PORT__", String(port)));
  // An admin token, so the console's token prompt is exercised too.
  fs.appendFileSync(path.join(flows, "idflow.yaml"), '\nadmin: { token: "env:IDFLOW_ADMIN_TOKEN" }\n');
  // lookup-user calls the server itself on loopback, which flows reach only when egress.allow says so.
  const config = fs.readFileSync(path.join(flows, "idflow.yaml"), "utf8");
  const allowed = config.replace(/^egress:\n  allow:\n/m, (block) => `${block}    - "127.0.0.1:${port}"\n`);
  assert.notEqual(allowed, config, "examples/flows/idflow.yaml has an `egress: allow:` block to extend");
  fs.writeFileSync(path.join(flows, "idflow.yaml"), allowed);

  server = spawn(bin, ["serve", "--flows", flows, "--data", path.join(dir, "data"), "--addr", `127.0.0.1:${port}`, "--no-reload"], {
    env: { ...process.env, IDFLOW_ADMIN_TOKEN: TOKEN, GREET_TOKEN: "greet-token", IDFLOW_LOG: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    assert.ok(i < 300 && server.exitCode === null, "idflow serve did not start");
    await new Promise((r) => setTimeout(r, 100));
  }

  runs.failed = await runToEnd("lookup-user", { login: "ada@example.com" });
  runs.ok = await runToEnd("hello", { name: "Ada" });
  runs.digest = await runToEnd("daily-digest", {});
  runs.nesting = await runToEnd("nesting", {});
  assert.equal(runs.failed.status, "failed");
  assert.equal(runs.ok.status, "succeeded");
  assert.equal(runs.digest.status, "succeeded");
  assert.equal(runs.nesting.status, "succeeded");

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on("pageerror", (e) => console.error("page error:", e));
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("flows page asks for the admin token once and lists flows with trigger, last run and 24 h count", { skip }, async () => {
  await page.goto(`${base}/`);
  const dialog = page.locator("#token-dialog");
  await dialog.waitFor({ state: "visible" });
  await page.fill("#token-input", TOKEN);
  await page.click("#token-form button");
  const hello = page.locator('#flows tr[data-flow="hello"]');
  await hello.waitFor();
  assert.match(await hello.innerText(), /manual/);
  assert.equal(await hello.locator(".badge").innerText(), "succeeded");
  assert.equal((await hello.locator("td.num").innerText()).trim(), "1");
  assert.equal(await page.locator('#flows tr[data-flow="lookup-user"] .badge').innerText(), "failed");
  await shot("flows");

  await page.selectOption("#trigger-filter", "helper");
  await page.waitForFunction(() => location.hash === "#/flows?trigger=helper");
  // team-digest is in the unfiltered list too: wait for the filtered one to replace it.
  await page.waitForFunction(() => document.querySelectorAll("#flows tbody tr").length === 1);
  assert.equal(await page.locator('#flows tr[data-flow="team-digest"]').count(), 1);
});

test("flow page draws the chart with a link to the helper flow, the source and recent runs", { skip }, async () => {
  await page.goto(`${base}/#/flows/daily-digest`);
  const digests = page.locator('#chart [data-step="digests"]');
  await digests.waitFor();
  assert.match(await page.locator("#chart .node.trigger").innerText(), /schedule/);
  assert.match(await digests.innerText(), /map/);
  assert.match(await page.locator("#source").innerText(), /name: daily-digest/);
  assert.equal(await page.locator(`tr[data-run="${runs.digest.id}"]`).count(), 1);
  await shot("flow");
  await digests.locator("a.helper").click();
  await page.waitForFunction(() => location.hash === "#/flows/team-digest");
  await page.locator('#chart [data-step="line"]').waitFor();
});

test("runs page lists runs newest first and finds the failed run by text in its step data", { skip }, async () => {
  await page.goto(`${base}/#/runs`);
  await page.locator(`#runs tr[data-run="${runs.failed.id}"]`).waitFor();
  const ids = await page.locator("#runs tbody tr[data-run]").evaluateAll((rows) => rows.map((r) => r.dataset.run));
  assert.ok(ids.indexOf(runs.digest.id) < ids.indexOf(runs.failed.id), "newest first");
  await shot("runs");

  await page.fill('#run-filters input[name="q"]', "e0000007");
  await page.click("#run-filters button");
  await page.waitForFunction(() => location.hash.includes("q=e0000007"));
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("#runs tbody tr[data-run]")];
    return rows.length > 0 && rows.every((r) => r.dataset.run !== id);
  }, runs.ok.id);
  const found = await page.locator("#runs tbody tr[data-run]").evaluateAll((rows) => rows.map((r) => r.dataset.run));
  assert.ok(found.includes(runs.failed.id), `search found ${found}`);
  assert.ok(found.every((id) => id !== runs.digest.id));

  await page.goto(`${base}/#/runs?status=succeeded&flow=hello`);
  await page.locator(`#runs tr[data-run="${runs.ok.id}"]`).waitFor();
  assert.equal(await page.locator("#runs tbody tr[data-run]").count(), 1);
});

test("run page shows each step and highlights Okta's errorCode and errorSummary; re-run starts a new run", { skip }, async () => {
  await page.goto(`${base}/#/runs/${runs.failed.id}`);
  const find = page.locator('li.step[data-step="find"]');
  await find.waitFor();
  assert.equal(await find.getAttribute("data-status"), "failed");
  assert.match(await find.locator(".attempts").innerText(), /2 attempts/);
  assert.equal(await find.locator(".error-code").innerText(), "E0000007");
  assert.match(await find.locator(".error-summary").innerText(), /Resource not found: ada@example\.com \(User\)/);
  assert.match(await page.locator("#run-error").innerText(), /find/);
  assert.ok(await page.locator("#cancel").isDisabled(), "cancel is off for an ended run");
  await shot("run-failed");

  await page.click("#rerun");
  await page.waitForFunction((old) => /^#\/runs\/[0-9A-Z]{26}$/.test(location.hash) && !location.hash.endsWith(old), runs.failed.id);
  const newId = (await page.evaluate(() => location.hash)).split("/").pop();
  // The hash changes before the new run's page is drawn: wait for its facts, not for any badge
  // (the old run's page still has one).
  await page.waitForFunction(() => /rerun/.test(document.querySelector("dl.facts")?.innerText ?? ""), null, { timeout: 10000 });
  assert.match(await page.locator("dl.facts").innerText(), new RegExp(`rerun[\\s\\S]*${runs.failed.id}`));
  // The page long-polls a running run and redraws when it ends.
  await page.waitForFunction(() => document.querySelector("#run-status .badge")?.dataset.status === "failed", null, { timeout: 30000 });
  const listed = await api("GET", `/api/runs?flow=lookup-user`);
  assert.ok(listed.runs.some((r) => r.id === newId && r.trigger.kind === "rerun"));
});

test("run page of a succeeded run shows its steps and nests its helper runs", { skip }, async () => {
  await page.goto(`${base}/#/runs/${runs.ok.id}`);
  await page.locator('li.step[data-step="greeting"]').waitFor();
  assert.equal(await page.locator("li.step").count(), 3);
  await page.locator('li.step[data-step="greeting"] details summary', { hasText: "output" }).click();
  assert.match(await page.locator('li.step[data-step="greeting"]').innerText(), /Hello Ada/);
  await shot("run-succeeded");

  await page.goto(`${base}/#/runs/${runs.digest.id}`);
  const children = page.locator("#children ul.children > li");
  await children.first().waitFor();
  assert.equal(await children.count(), 3);
  await children.first().locator("summary").first().click();
  await children.first().locator('li.step[data-step="line"]').waitFor();
  await shot("run-helpers");
});

test("a succeeded run's page shows no stray text where absent parts would go", { skip }, async () => {
  await page.goto(`${base}/#/runs/${runs.ok.id}`);
  await page.locator('li.step[data-step="greeting"]').waitFor();
  const stray = await page.evaluate(() =>
    [...document.querySelector("#main").childNodes].filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()).map((n) => n.textContent),
  );
  assert.deepEqual(stray, []);
  assert.doesNotMatch(await page.locator("#main").innerText(), /^null$/m);
});

test("run page nests loop iterations under their loop and names nested steps after their parent", { skip }, async () => {
  await page.goto(`${base}/#/runs/${runs.nesting.id}`);
  const loop = page.locator('ol.steps > li.step[data-step="printed"]');
  await loop.waitFor();
  const nested = loop.locator("ol.steps.nested > li.step");
  assert.deepEqual(await nested.evaluateAll((items) => items.map((i) => i.dataset.step)), ["printed[0].printed.steps.0", "printed[1].printed.steps.0"]);
  // Top-level rows: the loop first (its record is written last), then the try and what follows.
  const top = await page.locator("ol.steps:not(.nested) > li.step").evaluateAll((items) => items.map((i) => i.dataset.step));
  assert.deepEqual(top, ["printed", "guarded", "pause", "s3"]);
  const guarded = page.locator('li.step[data-step="guarded"]');
  assert.equal(await guarded.getAttribute("data-status"), "succeeded");
  assert.deepEqual(
    await guarded.locator("ol.steps.nested > li.step").evaluateAll((items) => items.map((i) => i.dataset.step)),
    ["guarded.try.0", "guarded.catch.0"],
  );
  await shot("run-nesting");
});

test("flow page shows the chart beside the source and a schedule flow's next fire times", { skip }, async () => {
  await page.goto(`${base}/#/flows/daily-digest`);
  await page.locator('#chart [data-step="digests"]').waitFor();
  const chart = await page.locator("#chart").boundingBox();
  const source = await page.locator("#source").boundingBox();
  assert.ok(chart.x + chart.width <= source.x, `chart ${JSON.stringify(chart)} is left of the source ${JSON.stringify(source)}`);
  assert.ok(Math.abs(chart.y - source.y) < 40, "side by side, not stacked");
  const fires = await page.locator("#next-fires li").evaluateAll((items) => items.map((i) => i.dataset.time));
  assert.equal(fires.length, 5);
  const times = fires.map((t) => Date.parse(t));
  assert.ok(times[0] > Date.now(), "the first fire time is ahead");
  assert.ok(times.every((t, i) => i === 0 || t > times[i - 1]), "in order");
  // 08:00 in Paris on weekdays.
  for (const t of fires) {
    const paris = new Date(t).toLocaleString("en-GB", { timeZone: "Europe/Paris", weekday: "short", hour: "2-digit", minute: "2-digit" });
    assert.match(paris, /^(Mon|Tue|Wed|Thu|Fri) 08:00$/);
  }
  await page.goto(`${base}/#/flows/hello`);
  // The schedule flow's #chart is still there until the new page replaces it: wait for this one's title.
  await page.locator(".page-head h1", { hasText: /^hello$/ }).waitFor();
  await page.locator("#chart").waitFor();
  assert.equal(await page.locator("#next-fires").count(), 0, "a manual flow has no fire times");
  await shot("flow-side-by-side");
});

test("run page draws the run on the flow chart and a click shows a step's data", { skip }, async () => {
  await page.goto(`${base}/#/runs/${runs.failed.id}`);
  const find = page.locator('#chart li.node[data-name="find"]');
  await find.waitFor();
  assert.equal(await find.getAttribute("data-run-status"), "failed");
  await find.locator(":scope > .box").click();
  const detail = page.locator("#chart-detail");
  await detail.locator('li.step[data-step="find"]').waitFor();
  assert.match(await detail.innerText(), /E0000007/);
  await shot("run-chart-failed");

  await page.goto(`${base}/#/runs/${runs.nesting.id}`);
  const inner = page.locator('#chart li.node[data-name="printed.steps.0"]');
  await inner.waitFor();
  assert.equal(await inner.getAttribute("data-run-status"), "succeeded");
  assert.equal(await page.locator('#chart li.node[data-name="guarded.try.0"]').getAttribute("data-run-status"), "failed");
  assert.equal(await page.locator('#chart li.node[data-name="guarded"]').getAttribute("data-run-status"), "succeeded");
  await inner.locator(":scope > .box").click();
  assert.deepEqual(
    await page.locator("#chart-detail li.step").evaluateAll((items) => items.map((i) => i.dataset.step)),
    ["printed[0].printed.steps.0", "printed[1].printed.steps.0"],
  );
  await shot("run-chart-nesting");
});

test("run page has a timeline with one bar per step, as long as the step took", { skip }, async () => {
  await page.goto(`${base}/#/runs/${runs.nesting.id}`);
  const rows = page.locator("#timeline li");
  await rows.first().waitFor();
  const detail = await api("GET", `/api/runs/${runs.nesting.id}`);
  assert.equal(await rows.count(), detail.steps.length);
  const widths = await rows.evaluateAll((items) => items.map((i) => [i.dataset.step, i.querySelector(".tl-bar").getBoundingClientRect().width]));
  const widest = widths.reduce((a, b) => (b[1] > a[1] ? b : a));
  assert.equal(widest[0], "pause", `the one-second wait is the longest bar: ${JSON.stringify(widths)}`);
  await shot("run-timeline");
});

test("pausing a flow stops its trigger and says so; resuming starts runs again", { skip }, async () => {
  await page.goto(`${base}/#/flows/hello`);
  await page.locator("#pause").click();
  await page.locator("#paused").waitFor();
  assert.equal(await page.locator("#pause").innerText(), "Resume");
  assert.ok(await page.locator("#start-run").isDisabled(), "Run now is off while paused");
  const refused = await fetch(`${base}/api/flows/hello/runs`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: "{}" });
  assert.equal(refused.status, 409);
  assert.match((await refused.json()).error.message, /paused/);
  await shot("flow-paused");

  await page.goto(`${base}/#/flows`);
  await page.locator('#flows tr[data-flow="hello"] .badge.paused').waitFor();
  assert.equal(await page.locator("#flows .badge.paused").count(), 1);

  await page.goto(`${base}/#/flows/hello`);
  await page.locator("#pause", { hasText: "Resume" }).click();
  await page.locator("#pause", { hasText: "Pause" }).waitFor();
  assert.equal(await page.locator("#paused").count(), 0);
  const again = await runToEnd("hello", { name: "Grace" });
  assert.equal(again.status, "succeeded");
});

test("flow page shows the checker's warnings with line, column, field path and suggestion", { skip }, async () => {
  await page.goto(`${base}/#/flows/suspicious`);
  const warning = page.locator('#findings li.finding[data-level="warning"]');
  await warning.waitFor();
  assert.equal(await warning.count(), 1);
  assert.equal(await warning.locator(".finding-where").innerText(), "suspicious.yaml:10:29");
  assert.equal(await warning.locator(".finding-path").innerText(), "step `s1`: with.text");
  assert.match(await warning.locator(".finding-message").innerText(), /the `flow.assign` output has no field `logn`/);
  assert.equal(await warning.locator(".finding-suggestion code").innerText(), "login");
  // A warning does not stop the flow: it was deployed and can run; nothing was refused.
  assert.equal(await page.locator("#start-run").isDisabled(), false);
  assert.equal(await page.locator("#rejected").count(), 0);
  await shot("flow-checks");

  await page.goto(`${base}/#/flows/hello`);
  await page.locator("#findings-none").waitFor();
  assert.equal(await page.locator("#findings li").count(), 0);
});
