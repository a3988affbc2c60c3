// idflow console: hash-routed pages over the admin API. No framework, no build step.
// Every value from the API is inserted as text (never as HTML), so run data cannot inject markup.

const TOKEN_KEY = "idflow.adminToken";
const main = document.getElementById("main");
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled"];

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const badge = (status) => h("span", { class: `badge ${status}`, "data-status": status }, status);
const runLink = (id) => h("a", { href: `#/runs/${id}`, class: "mono" }, id);
const flowLink = (name) => h("a", { href: `#/flows/${encodeURIComponent(name)}` }, name);

function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

function ms(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1000) return `${n} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
  return `${Math.floor(n / 60000)} min ${Math.round((n % 60000) / 1000)} s`;
}

function json(value, label, open) {
  if (value && typeof value === "object" && value.idflow_truncated && value.href) return linkedJson(value, label);
  const text = JSON.stringify(value, null, 2);
  return h("details", { class: "json", open }, h("summary", {}, label), h("pre", {}, text === undefined ? "null" : text));
}

// A step value too big for the run's page comes as a preview and a link to its step record
// (`href`, the value at the JSON pointer `field`): shown as the preview, loaded whole on demand.
function linkedJson(value, label) {
  const load = h("button", { type: "button", class: "small" }, `Load the whole value (${value.bytes} bytes)`);
  const box = h(
    "details",
    { class: "json" },
    h("summary", {}, `${label} (${value.bytes} bytes, preview)`),
    h("pre", {}, `${value.preview}…`),
    load,
  );
  load.addEventListener("click", async () => {
    load.disabled = true;
    try {
      let whole = await api(value.href);
      for (const key of String(value.field || "").split("/").slice(1)) whole = whole?.[key];
      box.replaceWith(json(whole, label, true));
    } catch (error) {
      load.disabled = false;
      load.textContent = `Could not load it: ${error.message}. Try again`;
    }
  });
  return box;
}

// replaceChildren turns null into the text "null": leave absent parts out.
const present = (nodes) => nodes.flat(Infinity).filter((n) => n !== undefined && n !== null && n !== false);

function show(...nodes) {
  main.replaceChildren(...present(nodes));
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

// The trigger kinds, read once from the OpenAPI document (generated from the server's one table of
// kinds) so that a new kind needs no change here. Without it the filter offers "all triggers" only.
let triggerKinds = null;
async function triggers() {
  if (!triggerKinds) {
    const doc = await fetch("/api/openapi.json", { headers: { accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .catch(() => null);
    const kinds = doc?.components?.schemas?.Flow?.properties?.trigger?.enum;
    if (!Array.isArray(kinds)) return [];
    triggerKinds = kinds.filter((t) => t !== "invalid");
  }
  return triggerKinds;
}

async function api(path, options = {}) {
  const headers = { accept: "application/json", ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => null);
  if (response.status === 401 && !options.retried) {
    if (await askToken()) return api(path, { ...options, retried: true });
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "save" && input.value) {
          sessionStorage.setItem(TOKEN_KEY, input.value);
          resolve(true);
        } else resolve(false);
      },
      { once: true },
    );
    dialog.showModal();
  });
}

document.getElementById("token-button").addEventListener("click", async () => {
  if (await askToken()) route();
});

function failure(error) {
  return h("div", { class: "error-box" }, h("strong", {}, error.code || "error"), " ", error.message);
}

// ---------- Routing ----------

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/flows";
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

let generation = 0;

async function route() {
  const mine = ++generation;
  const { parts, params } = parseHash();
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  try {
    if (parts[0] === "flows" && parts[1]) await flowPage(parts[1], mine);
    else if (parts[0] === "runs" && parts[1]) await runPage(parts[1], mine);
    else if (parts[0] === "runs") await runsPage(params, mine);
    else await flowsPage(params, mine);
  } catch (error) {
    if (mine === generation) show(failure(error));
  }
}

const current = (mine) => mine === generation;

window.addEventListener("hashchange", route);
route();

// ---------- Flows ----------

async function flowsPage(params, mine) {
  const trigger = params.get("trigger") || "";
  const q = new URLSearchParams({ stats: "1" });
  if (trigger) q.set("trigger", trigger);
  const [{ flows }, kinds] = await Promise.all([api(`/api/flows?${q}`), triggers()]);
  if (!current(mine)) return;
  const select = h(
    "select",
    { id: "trigger-filter", onchange: (e) => (location.hash = e.target.value ? `#/flows?trigger=${e.target.value}` : "#/flows") },
    h("option", { value: "" }, "all triggers"),
    kinds.map((t) => h("option", { value: t, selected: t === trigger }, t)),
  );
  show(
    h("div", { class: "page-head" }, h("h1", {}, "Flows"), h("label", { class: "filter" }, "Trigger ", select)),
    h(
      "table",
      { class: "list", id: "flows" },
      h("thead", {}, h("tr", {}, h("th", {}, "Flow"), h("th", {}, "Trigger"), h("th", {}, "Last run"), h("th", { class: "num" }, "Runs (24 h)"))),
      h(
        "tbody",
        {},
        flows.length === 0 ? h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No flows.")) : null,
        flows.map((f) =>
          h(
            "tr",
            { "data-flow": f.name },
            h("td", {}, flowLink(f.name), f.paused ? [" ", h("span", { class: "badge paused" }, "paused")] : null, f.description ? h("div", { class: "muted small" }, f.description) : null),
            h("td", {}, h("span", { class: "kind" }, f.trigger)),
            h("td", {}, f.lastRun ? [badge(f.lastRun.status), " ", h("a", { href: `#/runs/${f.lastRun.id}`, class: "small" }, when(f.lastRun.createdAt))] : h("span", { class: "muted" }, "never")),
            h("td", { class: "num" }, f.runs24h ?? "—"),
          ),
        ),
      ),
    ),
  );
}

// ---------- Flow ----------

function chartSteps(steps) {
  return h(
    "ol",
    { class: "chart-steps" },
    steps.map((s) =>
      h(
        "li",
        { class: `node ${s.kind}`, "data-step": s.key, "data-name": s.name },
        h(
          "div",
          { class: "box" },
          h("span", { class: "node-kind" }, s.kind === "card" ? s.label : s.kind),
          s.named ? h("span", { class: "node-key" }, s.key) : null,
          s.kind !== "card" && s.label ? h("code", { class: "node-label" }, s.label) : null,
          s.guard ? h("code", { class: "node-guard" }, `if ${s.guard}`) : null,
          s.helper ? h("a", { class: "helper", href: `#/flows/${encodeURIComponent(s.helper)}` }, `→ ${s.helper}`) : null,
          s.onError ? h("span", { class: "muted small" }, `on error: ${s.onError}`) : null,
        ),
        s.children.length
          ? h("div", { class: "branches" }, s.children.map((c) => h("div", { class: "branch" }, h("div", { class: "branch-label" }, c.label), c.steps.length ? chartSteps(c.steps) : h("div", { class: "muted small" }, "(nothing)"))))
          : null,
      ),
    ),
  );
}

function flowChart(flow) {
  return h(
    "div",
    { class: "chart", id: "chart" },
    h("div", { class: "node trigger" }, h("div", { class: "box" }, h("span", { class: "node-kind" }, `trigger: ${flow.trigger.kind}`), flow.trigger.summary ? h("code", { class: "node-label" }, flow.trigger.summary) : null)),
    chartSteps(flow.steps),
  );
}

function pausedNote(flow) {
  if (!flow.paused) return null;
  return h("div", { class: "paused-box", id: "paused" }, h("strong", {}, "Paused"), ` since ${when(flow.paused)}: its trigger starts no runs (API calls get 409, schedule fire times and events are skipped) until it is resumed.`);
}

function nextFires(flow) {
  if (!flow.nextFires) return null;
  return h(
    "section",
    {},
    h("h2", {}, "Next fire times"),
    flow.nextFires.length ? h("ol", { class: "fires", id: "next-fires" }, flow.nextFires.map((t) => h("li", { "data-time": t }, when(t)))) : h("p", { class: "muted" }, "This schedule does not fire again."),
  );
}

// One finding of the static checker: where (line:col, field path), what, and the close name it
// suggests.
function finding(d, level) {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.column}` : d.file;
  return h(
    "li",
    { class: `finding ${level}`, "data-level": level, "data-line": d.line, "data-column": d.column },
    h("span", { class: `badge ${level}` }, level),
    " ",
    h("code", { class: "finding-where" }, where),
    d.path ? [" ", h("code", { class: "finding-path" }, d.path)] : null,
    h("div", { class: "finding-message" }, d.message),
    d.suggestion ? h("div", { class: "finding-suggestion muted" }, "Did you mean ", h("code", {}, d.suggestion), "?") : null,
  );
}

// What the checker finds in the flow: errors and warnings of the version shown (warnings do not stop
// it from running) and, apart, the errors of its file that the server's last reload refused.
function checks(flow) {
  const c = flow.checks;
  if (!c) return null;
  const found = [...c.errors.map((d) => finding(d, "error")), ...c.warnings.map((d) => finding(d, "warning"))];
  const rejected = c.rejected.length
    ? h(
        "div",
        { class: "rejected-box", id: "rejected" },
        h("strong", {}, "The file was not reloaded"),
        ` (${c.rejected.length} error${c.rejected.length === 1 ? "" : "s"}): the version shown below, deployed before, keeps running until the file checks clean.`,
        h("ul", { class: "findings" }, c.rejected.map((d) => finding(d, "error"))),
      )
    : null;
  return h(
    "section",
    { id: "checks" },
    h("h2", {}, "Checks"),
    rejected,
    found.length
      ? h("ul", { class: "findings", id: "findings" }, found)
      : h("p", { class: "muted", id: "findings-none" }, "The checker finds nothing in this version."),
  );
}

async function flowPage(name, mine) {
  const [flow, runs] = await Promise.all([
    api(`/api/flows/${encodeURIComponent(name)}`),
    api(`/api/runs?${new URLSearchParams({ flow: name, limit: "20" })}`),
  ]);
  if (!current(mine)) return;
  const start = h(
    "button",
    {
      class: "primary",
      id: "start-run",
      disabled: !!flow.paused,
      onclick: async () => {
        const { runId } = await api(`/api/flows/${encodeURIComponent(name)}/runs`, { method: "POST", body: {} });
        location.hash = `#/runs/${runId}`;
      },
    },
    "Run now",
  );
  const pause = h(
    "button",
    {
      id: "pause",
      onclick: async () => {
        await api(`/api/flows/${encodeURIComponent(name)}/${flow.paused ? "resume" : "pause"}`, { method: "POST" });
        route();
      },
    },
    flow.paused ? "Resume" : "Pause",
  );
  show(
    h("div", { class: "page-head" }, h("h1", {}, flow.name), flow.paused ? h("span", { class: "badge paused" }, "paused") : null, h("span", { class: "spacer" }), pause, start),
    flow.description ? h("p", { class: "muted" }, flow.description) : null,
    pausedNote(flow),
    checks(flow),
    h(
      "div",
      { class: "side-by-side" },
      h("section", {}, h("h2", {}, "Flow chart"), flowChart(flow)),
      h("section", {}, h("h2", {}, "Source ", h("span", { class: "muted small mono" }, `${flow.path} · ${flow.version}`)), h("pre", { class: "source", id: "source" }, flow.source)),
    ),
    nextFires(flow),
    h("section", {}, h("h2", {}, "Recent runs"), runsTable(runs.runs), h("a", { href: `#/runs?flow=${encodeURIComponent(name)}` }, "All runs of this flow")),
  );
}

// ---------- Runs ----------

function runsTable(runs, id) {
  return h(
    "table",
    { class: "list", id },
    h("thead", {}, h("tr", {}, h("th", {}, "Run"), h("th", {}, "Flow"), h("th", {}, "Status"), h("th", {}, "Trigger"), h("th", {}, "Created"), h("th", { class: "num" }, "Duration"))),
    h("tbody", {}, runs.length === 0 ? h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs.")) : null, runs.map(runRow)),
  );
}

function runRow(r) {
  return h(
    "tr",
    { "data-run": r.id, "data-status": r.status },
    h("td", {}, runLink(r.id)),
    h("td", {}, flowLink(r.flow)),
    h("td", {}, badge(r.status), r.error ? h("div", { class: "small err-text" }, r.error.message) : null),
    h("td", {}, r.trigger.kind),
    h("td", {}, when(r.createdAt)),
    h("td", { class: "num" }, ms(r.durationMs)),
  );
}

function toIso(local) {
  return local ? new Date(local).toISOString() : "";
}

async function runsPage(params, mine) {
  const { flows } = await api("/api/flows");
  if (!current(mine)) return;
  const field = (name) => params.get(name) || "";
  const form = h(
    "form",
    {
      class: "filters",
      id: "run-filters",
      onsubmit: (e) => {
        e.preventDefault();
        const data = new FormData(e.target);
        const q = new URLSearchParams();
        for (const [k, v] of data) if (v) q.set(k, v);
        location.hash = `#/runs?${q}`;
      },
    },
    h("label", {}, "Flow ", h("select", { name: "flow" }, h("option", { value: "" }, "any"), flows.map((f) => h("option", { value: f.name, selected: f.name === field("flow") }, f.name)))),
    h("label", {}, "Status ", h("select", { name: "status" }, h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s, selected: s === field("status") }, s)))),
    h("label", {}, "From ", h("input", { type: "datetime-local", name: "since", value: field("since") })),
    h("label", {}, "To ", h("input", { type: "datetime-local", name: "until", value: field("until") })),
    h("label", {}, "Search ", h("input", { type: "search", name: "q", value: field("q"), placeholder: "text in step data" })),
    h("button", { class: "primary" }, "Apply"),
  );
  const query = new URLSearchParams({ limit: "25" });
  for (const k of ["flow", "status", "q"]) if (field(k)) query.set(k, field(k));
  if (field("since")) query.set("since", toIso(field("since")));
  if (field("until")) query.set("until", toIso(field("until")));
  const table = runsTable([], "runs");
  const tbody = table.querySelector("tbody");
  const more = h("button", { id: "more", hidden: true }, "Older runs");
  let cursor = null;
  async function load() {
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/api/runs?${query}`);
    if (!current(mine)) return;
    if (!cursor) tbody.replaceChildren();
    tbody.append(...page.runs.map(runRow));
    if (!tbody.children.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs match.")));
    cursor = page.nextCursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", load);
  show(h("div", { class: "page-head" }, h("h1", {}, "Runs")), form, table, more);
  await load();
}

// ---------- Run ----------

function oktaError(error) {
  const d = error.detail;
  const src = d && (d.errorCode || d.errorSummary) ? d : d && d.body && (d.body.errorCode || d.body.errorSummary) ? d.body : null;
  if (!src) return null;
  const causes = (src.errorCauses || []).map((c) => c.errorSummary).filter(Boolean);
  return h(
    "div",
    { class: "okta-error" },
    src.errorCode ? h("code", { class: "error-code" }, src.errorCode) : null,
    " ",
    h("span", { class: "error-summary" }, src.errorSummary || ""),
    causes.length ? h("ul", {}, causes.map((c) => h("li", {}, c))) : null,
    src.requestId ? h("div", { class: "muted small" }, `request id ${src.requestId}`) : null,
  );
}

function stepItem(s) {
  return h(
    "li",
    { class: `step ${s.status}`, "data-step": s.step, "data-status": s.status },
    h(
      "div",
      { class: "step-head" },
      h("span", { class: "seq" }, s.seq),
      h("strong", { class: "step-name" }, s.step),
      h("span", { class: "muted mono" }, s.card),
      badge(s.status),
      h("span", { class: "muted small" }, ms(s.durationMs)),
      s.attempts > 1 ? h("span", { class: "attempts" }, `${s.attempts} attempts`) : h("span", { class: "muted small" }, "1 attempt"),
    ),
    s.error
      ? h(
          "div",
          { class: "error-box step-error" },
          h("div", {}, h("strong", {}, s.error.code), s.error.status ? ` (HTTP ${s.error.status})` : "", " ", s.error.message),
          oktaError(s.error),
          s.error.detail ? json(s.error.detail, "error detail") : null,
        )
      : null,
    s.input !== null && s.input !== undefined ? json(s.input, "input") : null,
    s.output !== null && s.output !== undefined ? json(s.output, "output") : null,
  );
}

// History names nest: `printed[0].printed.steps.0` is inside iteration 0 of `printed`, and
// `check.then.0` inside `check`. A record goes under the nearest record whose name is its prefix.
function stepTree(steps) {
  const byName = new Map(steps.map((s) => [s.step, { record: s, children: [], first: s.seq }]));
  const roots = [];
  for (const s of steps) {
    const node = byName.get(s.step);
    let parent = null;
    for (let cut = s.step.length - 1; cut > 0 && !parent; cut--) {
      const c = s.step[cut];
      if (c !== "." && c !== "[") continue;
      const candidate = byName.get(s.step.slice(0, cut));
      if (candidate && candidate !== node) parent = candidate;
    }
    (parent ? parent.children : roots).push(node);
  }
  // A loop's record is written when its last iteration ends: list it where its subtree begins.
  const first = (n) => (n.first = Math.min(n.record.seq, ...n.children.map(first)));
  roots.forEach(first);
  const order = (list) => list.sort((a, b) => a.first - b.first || a.record.seq - b.record.seq).forEach((n) => order(n.children));
  order(roots);
  return roots;
}

function stepNodes(nodes) {
  return nodes.map((n) => {
    const item = stepItem(n.record);
    if (n.children.length) item.append(h("ol", { class: "steps nested" }, stepNodes(n.children)));
    return item;
  });
}

function stepsList(steps) {
  if (!steps.length) return h("p", { class: "muted" }, "No step records (the flow's history setting may keep only errors, or none).");
  return h("ol", { class: "steps" }, stepNodes(stepTree(steps)));
}

async function childRuns(id) {
  const { runs } = await api(`/api/runs?${new URLSearchParams({ parent: id, limit: "100" })}`);
  if (!runs.length) return null;
  return h(
    "section",
    { id: "children" },
    h("h2", {}, `Helper runs (${runs.length})`),
    h(
      "ul",
      { class: "children" },
      runs.map((r) => {
        const body = h("div", { class: "child-body" }, h("p", { class: "muted" }, "Loading…"));
        let loaded = false;
        return h(
          "li",
          { "data-run": r.id },
          h(
            "details",
            {
              ontoggle: async (e) => {
                if (!e.target.open || loaded) return;
                loaded = true;
                const detail = await api(`/api/runs/${r.id}`);
                body.replaceChildren(...present([stepsList(detail.steps), await childRuns(r.id)]));
              },
            },
            h("summary", {}, flowLink(r.flow), " ", badge(r.status), " ", runLink(r.id), " ", h("span", { class: "muted small" }, ms(r.durationMs)), r.error ? h("span", { class: "small err-text" }, ` ${r.error.message}`) : null),
            body,
          ),
        );
      }),
    ),
  );
}

// A record's chart box: its history name without loop iteration prefixes
// (`printed[1].printed.steps.0` → `printed.steps.0`).
const chartName = (step) => {
  const cut = step.lastIndexOf("].");
  return cut < 0 ? step : step.slice(cut + 2);
};

const STATUS_RANK = { failed: 4, running: 3, succeeded: 2, skipped: 1 };

// The flow chart with each box coloured by what its records say; clicking a box shows them.
async function runChart(run) {
  let flow;
  try {
    flow = await api(`/api/flows/${encodeURIComponent(run.flow)}`);
  } catch {
    return null; // the flow was removed since: the step list below still tells the story
  }
  const byBox = new Map();
  for (const r of run.steps) {
    const name = chartName(r.step);
    if (!byBox.has(name)) byBox.set(name, []);
    byBox.get(name).push(r);
  }
  const chart = flowChart(flow);
  const detail = h("div", { id: "chart-detail", class: "chart-detail muted" }, "Click a step to see its data.");
  for (const node of chart.querySelectorAll("li.node[data-name]")) {
    const records = byBox.get(node.dataset.name);
    if (!records) continue;
    const status = records.reduce((worst, r) => ((STATUS_RANK[r.status] || 0) > (STATUS_RANK[worst] || 0) ? r.status : worst), records[0].status);
    node.dataset.runStatus = status;
    node.classList.add(`ran-${status}`);
    const box = node.querySelector(":scope > .box");
    box.append(h("span", { class: "run-count small" }, records.length > 1 ? `×${records.length}` : ""));
    box.addEventListener("click", () => {
      for (const n of chart.querySelectorAll(".box.selected")) n.classList.remove("selected");
      box.classList.add("selected");
      detail.className = "chart-detail";
      detail.replaceChildren(h("h3", {}, node.dataset.name), h("ol", { class: "steps" }, records.map(stepItem)));
    });
  }
  const note = run.flowVersion === flow.version ? null : h("p", { class: "muted small" }, `The chart is of the current version ${flow.version}; this run used ${run.flowVersion}.`);
  return h("section", {}, h("h2", {}, "Run on the flow chart"), note, h("div", { class: "side-by-side" }, chart, detail));
}

// One bar per step record, placed by when it started and as long as it took.
function timeline(run) {
  const records = run.steps.filter((r) => r.startedAt);
  if (!records.length) return null;
  const t0 = Math.min(...records.map((r) => Date.parse(r.startedAt)));
  const end = Math.max(...records.map((r) => Date.parse(r.startedAt) + (r.durationMs || 0)), t0 + 1);
  const span = end - t0;
  return h(
    "section",
    {},
    h("h2", {}, "Timeline ", h("span", { class: "muted small" }, ms(span))),
    h(
      "ol",
      { class: "timeline", id: "timeline" },
      records.map((r) => {
        const left = ((Date.parse(r.startedAt) - t0) / span) * 100;
        const width = ((r.durationMs || 0) / span) * 100;
        // Through the CSSOM: the page's CSP refuses inline style attributes.
        const bar = h("span", { class: `tl-bar ${r.status}` });
        bar.style.marginLeft = `${left.toFixed(2)}%`;
        bar.style.width = `${width.toFixed(2)}%`;
        return h(
          "li",
          { "data-step": r.step, "data-status": r.status, "data-duration": r.durationMs },
          h("span", { class: "tl-name mono small", title: r.step }, r.step),
          h("span", { class: "tl-track" }, bar),
          h("span", { class: "tl-ms small muted" }, ms(r.durationMs)),
        );
      }),
    ),
  );
}

async function runPage(id, mine) {
  let run = await api(`/api/runs/${id}`);
  if (!current(mine)) return;
  const rerun = h(
    "button",
    {
      id: "rerun",
      class: "primary",
      onclick: async () => {
        const { runId } = await api(`/api/runs/${id}/rerun`, { method: "POST" });
        location.hash = `#/runs/${runId}`;
      },
    },
    "Re-run",
  );
  const cancel = h(
    "button",
    {
      id: "cancel",
      disabled: TERMINAL.has(run.status),
      onclick: async () => {
        try {
          await api(`/api/runs/${id}/cancel`, { method: "POST" });
        } catch (error) {
          alert(error.message);
        }
        route();
      },
    },
    "Cancel",
  );
  const trig = run.trigger;
  const trigText = Object.entries(trig)
    .filter(([k]) => k !== "kind")
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ");
  show(
    h("div", { class: "page-head" }, h("h1", {}, flowLink(run.flow), " ", h("span", { class: "muted mono small" }, run.id)), h("span", { id: "run-status" }, badge(run.status)), h("span", { class: "spacer" }), rerun, cancel),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Trigger"),
      h("dd", {}, trig.kind, trigText ? h("span", { class: "muted" }, ` (${trigText})`) : null, trig.of ? [" of ", runLink(trig.of)] : null),
      run.parent ? [h("dt", {}, "Parent run"), h("dd", {}, runLink(run.parent))] : null,
      h("dt", {}, "Created"),
      h("dd", {}, when(run.createdAt)),
      h("dt", {}, "Started"),
      h("dd", {}, when(run.startedAt)),
      h("dt", {}, "Finished"),
      h("dd", {}, when(run.finishedAt)),
      h("dt", {}, "Duration"),
      h("dd", {}, ms(run.durationMs)),
      run.wakeAt ? [h("dt", {}, "Wakes at"), h("dd", {}, when(run.wakeAt))] : null,
      h("dt", {}, "Version"),
      h("dd", { class: "mono small" }, run.flowVersion),
    ),
    run.error ? h("div", { class: "error-box", id: "run-error" }, h("strong", {}, run.error.code), run.error.step ? ` at step ${run.error.step}` : "", ": ", run.error.message) : null,
    h("div", { class: "io" }, json(run.input, "Run input"), json(run.output, "Run output")),
    await runChart(run),
    timeline(run),
    h("section", {}, h("h2", {}, `Steps (${run.steps.length})`), stepsList(run.steps)),
    await childRuns(id),
  );
  // A run still going: long-poll until it ends, then redraw (unless the user navigated away).
  if (!TERMINAL.has(run.status) && current(mine)) {
    run = await api(`/api/runs/${id}?wait=20`);
    if (current(mine)) route();
  }
}
