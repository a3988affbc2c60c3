//! Text rendering of runs for the terminal: a table of runs, and one run card by card.

use std::fmt::Write as _;
use std::io::IsTerminal;

use serde_json::Value;

/// ANSI colour codes, empty when the output is not a terminal or `NO_COLOR` is set.
#[derive(Debug, Clone, Copy)]
pub struct Colors {
    pub red: &'static str,
    pub green: &'static str,
    pub yellow: &'static str,
    pub dim: &'static str,
    pub bold: &'static str,
    pub reset: &'static str,
}

const ON: Colors = Colors {
    red: "\x1b[31m",
    green: "\x1b[32m",
    yellow: "\x1b[33m",
    dim: "\x1b[2m",
    bold: "\x1b[1m",
    reset: "\x1b[0m",
};
const OFF: Colors = Colors {
    red: "",
    green: "",
    yellow: "",
    dim: "",
    bold: "",
    reset: "",
};

fn pick(is_terminal: bool) -> Colors {
    if is_terminal && std::env::var_os("NO_COLOR").is_none() {
        ON
    } else {
        OFF
    }
}

pub fn colors() -> Colors {
    pick(std::io::stdout().is_terminal())
}

pub fn colors_stderr() -> Colors {
    pick(std::io::stderr().is_terminal())
}

fn status_color(status: &str, c: Colors) -> &'static str {
    match status {
        "succeeded" => c.green,
        "failed" => c.red,
        "cancelled" | "skipped" => c.dim,
        _ => c.yellow,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as plain text: a string without quotes, `-` for nothing, JSON otherwise.
pub fn plain(v: &Value) -> String {
    text(v)
}

/// An RFC 3339 instant as `2026-01-05 07:00:03` (UTC, to the second); anything else as it is.
fn when(v: &Value) -> String {
    match v
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(at) => at
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => text(v),
    }
}

/// A duration in milliseconds as `850 ms`, `12.3 s` or `4m 05s`.
fn duration(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// `idflow runs`: one line per run.
pub fn runs_table(page: &Value, c: Colors) -> String {
    let runs = page["runs"].as_array().cloned().unwrap_or_default();
    let header = [
        "RUN",
        "FLOW",
        "STATUS",
        "TRIGGER",
        "CREATED (UTC)",
        "DURATION",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for r in &runs {
        rows.push([
            text(&r["id"]),
            text(&r["flow"]),
            text(&r["status"]),
            text(&r["trigger"]["kind"]),
            when(&r["createdAt"]),
            duration(r["durationMs"].as_i64()),
        ]);
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, h) in header.iter().enumerate() {
        let _ = write!(out, "{}{:<w$}{}  ", c.bold, h, c.reset, w = widths[i]);
    }
    out.push('\n');
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let color = if i == 2 { status_color(cell, c) } else { "" };
            let reset = if color.is_empty() { "" } else { c.reset };
            let _ = write!(out, "{color}{:<w$}{reset}  ", cell, w = widths[i]);
        }
        out.push('\n');
    }
    if runs.is_empty() {
        out.push_str("no runs\n");
    }
    if let Some(cursor) = page["nextCursor"].as_str() {
        let _ = writeln!(out, "{}more: --cursor {cursor}{}", c.dim, c.reset);
    }
    out
}

fn indent_json(v: &Value, pad: &str) -> String {
    let pretty = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    pretty
        .lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Longest line of the input summary before it is cut.
const SUMMARY_WIDTH: usize = 100;

/// One line of JSON, cut at `width` characters with `…`.
fn one_line(v: &Value, width: usize) -> String {
    let line = match v {
        Value::String(s) => s.replace(['\r', '\n'], " "),
        other => other.to_string(),
    };
    if line.chars().count() > width {
        let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

/// `Ada Lovelace (ada.lovelace@example.com)`, from a System Log actor or target.
fn who(v: &Value) -> String {
    let name = v["displayName"].as_str().unwrap_or_default();
    let id = v["alternateId"]
        .as_str()
        .filter(|a| !a.is_empty() && *a != "unknown")
        .or_else(|| v["id"].as_str())
        .unwrap_or_default();
    match (name, id) {
        ("", id) => id.to_owned(),
        (name, "") => name.to_owned(),
        (name, id) if name == id => name.to_owned(),
        (name, id) => format!("{name} ({id})"),
    }
}

/// The lines that sum up a run's input: for an Okta event, what happened to whom; otherwise each
/// top-level field on one line. The whole input is in `idflow show <id> --json`.
fn input_summary(input: &Value) -> Vec<(String, String)> {
    let event = &input["event"];
    if event["eventType"].is_string() {
        let mut lines = Vec::new();
        let mut what = text(&event["eventType"]);
        if let Some(result) = event["outcome"]["result"].as_str() {
            what.push_str(&format!(" {result}"));
            if let Some(reason) = event["outcome"]["reason"].as_str() {
                what.push_str(&format!(" ({reason})"));
            }
        }
        lines.push(("event".to_owned(), what));
        lines.push((
            "published".to_owned(),
            format!(
                "{}  uuid {}",
                when(&event["published"]),
                text(&event["uuid"])
            ),
        ));
        if event["actor"].is_object() {
            lines.push(("actor".to_owned(), who(&event["actor"])));
        }
        for target in event["target"].as_array().into_iter().flatten() {
            lines.push((
                "target".to_owned(),
                format!("{} {}", text(&target["type"]), who(target)),
            ));
        }
        if let Some(ip) = event["client"]["ipAddress"].as_str() {
            lines.push(("client".to_owned(), ip.to_owned()));
        }
        return lines;
    }
    match input {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(key, value)| (key.clone(), one_line(value, SUMMARY_WIDTH)))
            .collect(),
        Value::Object(_) => vec![("input".to_owned(), "{}".to_owned())],
        other => vec![("input".to_owned(), one_line(other, SUMMARY_WIDTH))],
    }
}

/// `idflow show`: the run, a summary of its input, each step with status, duration, input, output
/// and error, then the helper runs it started.
pub fn run_card(run: &Value, helpers: &[Value], c: Colors) -> String {
    let mut out = String::new();
    let status = run["status"].as_str().unwrap_or("?");
    let _ = writeln!(
        out,
        "{}run {}{}  {}",
        c.bold,
        text(&run["id"]),
        c.reset,
        text(&run["flow"])
    );
    let _ = writeln!(
        out,
        "  status    {}{status}{}",
        status_color(status, c),
        c.reset
    );
    let _ = writeln!(out, "  trigger   {}", text(&run["trigger"]["kind"]));
    let _ = writeln!(out, "  version   {}", text(&run["flowVersion"]));
    let _ = writeln!(out, "  created   {} UTC", when(&run["createdAt"]));
    if let Some(d) = run["durationMs"].as_i64() {
        let _ = writeln!(out, "  duration  {}", duration(Some(d)));
    }
    if let Some(parent) = run["parent"].as_str() {
        let _ = writeln!(out, "  parent    {parent}");
    }
    if !run["error"].is_null() {
        let _ = writeln!(
            out,
            "  {}error     {}: {}{}",
            c.red,
            text(&run["error"]["code"]),
            text(&run["error"]["message"]),
            c.reset
        );
    }
    if !run["input"].is_null() {
        let _ = writeln!(
            out,
            "  input     {}(the whole input: idflow show {} --json){}",
            c.dim,
            text(&run["id"]),
            c.reset
        );
        let summary = input_summary(&run["input"]);
        let width = summary
            .iter()
            .map(|(key, _)| key.chars().count())
            .max()
            .unwrap_or(0)
            .max(10);
        for (key, value) in summary {
            let _ = writeln!(out, "    {}{key:<width$}{} {value}", c.dim, c.reset);
        }
    }
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\n{}steps{} ({})", c.bold, c.reset, steps.len());
    for s in &steps {
        let st = s["status"].as_str().unwrap_or("?");
        let attempts = s["attempts"].as_u64().unwrap_or(1);
        let attempts = if attempts > 1 {
            format!("  {attempts} attempts")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n  {}{}{} {}  {}{st}{}  {} ms{attempts}",
            c.bold,
            text(&s["step"]),
            c.reset,
            text(&s["card"]),
            status_color(st, c),
            c.reset,
            s["durationMs"].as_u64().unwrap_or(0)
        );
        if !s["input"].is_null() {
            let _ = writeln!(
                out,
                "    {}input{}\n{}",
                c.dim,
                c.reset,
                indent_json(&s["input"], "      ")
            );
        }
        if !s["output"].is_null() {
            let _ = writeln!(
                out,
                "    {}output{}\n{}",
                c.dim,
                c.reset,
                indent_json(&s["output"], "      ")
            );
        }
        if !s["error"].is_null() {
            let e = &s["error"];
            let status = e["status"]
                .as_u64()
                .map(|s| format!(" (HTTP {s})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {}error {}{status}: {}{}",
                c.red,
                text(&e["code"]),
                text(&e["message"]),
                c.reset
            );
            if !e["detail"].is_null() {
                let _ = writeln!(
                    out,
                    "{}{}{}",
                    c.red,
                    indent_json(&e["detail"], "      "),
                    c.reset
                );
            }
        }
    }
    if !run["output"].is_null() {
        let _ = writeln!(
            out,
            "\n{}output{}\n{}",
            c.bold,
            c.reset,
            indent_json(&run["output"], "  ")
        );
    }
    if !helpers.is_empty() {
        let _ = writeln!(
            out,
            "\n{}helper runs{} ({})",
            c.bold,
            c.reset,
            helpers.len()
        );
        for helper in helpers {
            let status = helper["status"].as_str().unwrap_or("?");
            let _ = writeln!(
                out,
                "  {}  {}  {}{status}{}  {}",
                text(&helper["id"]),
                text(&helper["flow"]),
                status_color(status, c),
                c.reset,
                duration(helper["durationMs"].as_i64())
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_card_shows_each_step_and_the_error() {
        let run = json!({
            "id": "01J", "flow": "greet", "status": "failed", "trigger": { "kind": "manual" },
            "error": { "code": "step_failed", "message": "boom" },
            "steps": [
                { "step": "a", "card": "text.compose", "status": "succeeded", "input": { "text": "hi" }, "output": "hi", "attempts": 1, "durationMs": 0 },
                { "step": "b", "card": "http.request", "status": "failed", "error": { "code": "http_status", "status": 404, "message": "not found" }, "attempts": 3, "durationMs": 12 }
            ]
        });
        let out = run_card(&run, &[], OFF);
        assert!(out.contains("a text.compose  succeeded"), "{out}");
        assert!(
            out.contains("b http.request  failed  12 ms  3 attempts"),
            "{out}"
        );
        assert!(
            out.contains("error http_status (HTTP 404): not found"),
            "{out}"
        );
        assert!(out.contains("error     step_failed: boom"), "{out}");
    }

    #[test]
    fn runs_table_lists_runs_and_cursor() {
        let page = json!({ "runs": [ { "id": "01A", "flow": "f", "status": "succeeded", "trigger": { "kind": "api" }, "createdAt": "2026-01-05T07:00:03.123456789Z", "durationMs": 12345 } ], "nextCursor": "abc" });
        let out = runs_table(&page, OFF);
        assert!(
            out.contains("01A  f     succeeded  api      2026-01-05 07:00:03  12.3 s"),
            "{out}"
        );
        assert!(out.contains("--cursor abc"), "{out}");
    }

    #[test]
    fn an_event_input_is_summed_up_in_a_few_lines() {
        let event = json!({
            "uuid": "f1d0b993-cc19-11ed-a688-db22c99ef6c4", "published": "2023-03-26T21:05:32.159Z",
            "eventType": "user.session.start", "outcome": { "result": "FAILURE", "reason": "INVALID_CREDENTIALS" },
            "actor": { "id": "00u1", "type": "User", "alternateId": "ada@example.com", "displayName": "Ada Lovelace" },
            "target": [{ "id": "lae1", "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": "Password" }],
            "client": { "ipAddress": "203.0.113.9", "userAgent": { "rawUserAgent": "Mozilla/5.0 …" } },
            "debugContext": { "debugData": { "requestUri": "/idp/idx/identify" } },
        });
        let run = json!({ "id": "01E", "flow": "f", "status": "succeeded", "trigger": { "kind": "event" },
            "input": { "event": event, "delivery": { "eventId": "x" } }, "steps": [] });
        let out = run_card(&run, &[], OFF);
        let input: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("  input"))
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(
            input,
            [
                "  input     (the whole input: idflow show 01E --json)",
                "    event      user.session.start FAILURE (INVALID_CREDENTIALS)",
                "    published  2023-03-26 21:05:32  uuid f1d0b993-cc19-11ed-a688-db22c99ef6c4",
                "    actor      Ada Lovelace (ada@example.com)",
                "    target     AuthenticatorEnrollment Password (lae1)",
                "    client     203.0.113.9",
            ]
        );
    }

    #[test]
    fn other_inputs_show_one_line_per_field_and_helper_runs_are_listed() {
        let long = "x".repeat(300);
        let run = json!({ "id": "01M", "flow": "f", "status": "succeeded", "trigger": { "kind": "manual" },
            "input": { "name": "Ada", "notes": long, "groups": ["eng", "ops"] }, "steps": [] });
        let helpers =
            [json!({ "id": "01H", "flow": "team-digest", "status": "succeeded", "durationMs": 4 })];
        let out = run_card(&run, &helpers, OFF);
        assert!(out.contains("    name       Ada\n"), "{out}");
        assert!(out.contains("    groups     [\"eng\",\"ops\"]\n"), "{out}");
        let notes = out.lines().find(|l| l.contains("notes")).expect("notes");
        assert!(
            notes.ends_with('…') && notes.chars().count() < 120,
            "{notes}"
        );
        assert!(
            out.contains("helper runs (1)\n  01H  team-digest  succeeded  4 ms"),
            "{out}"
        );
    }
}
