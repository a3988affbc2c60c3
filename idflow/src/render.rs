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

/// `idflow runs`: one line per run.
pub fn runs_table(page: &Value) -> String {
    let c = colors();
    let runs = page["runs"].as_array().cloned().unwrap_or_default();
    let header = ["RUN", "FLOW", "STATUS", "TRIGGER", "CREATED", "DURATION"];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for r in &runs {
        rows.push([
            text(&r["id"]),
            text(&r["flow"]),
            text(&r["status"]),
            text(&r["trigger"]["kind"]),
            text(&r["createdAt"]),
            r["durationMs"]
                .as_i64()
                .map(|d| format!("{d} ms"))
                .unwrap_or_else(|| "-".into()),
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

/// `idflow show`: the run, then each step with status, duration, input, output and error.
pub fn run_card(run: &Value, c: Colors) -> String {
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
    let _ = writeln!(out, "  created   {}", text(&run["createdAt"]));
    if let Some(d) = run["durationMs"].as_i64() {
        let _ = writeln!(out, "  duration  {d} ms");
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
        let _ = writeln!(out, "  input\n{}", indent_json(&run["input"], "    "));
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
        let out = run_card(&run, OFF);
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
        let page = json!({ "runs": [ { "id": "01A", "flow": "f", "status": "succeeded", "trigger": { "kind": "api" }, "createdAt": "t", "durationMs": 5 } ], "nextCursor": "abc" });
        let out = runs_table(&page);
        assert!(out.contains("01A  f     succeeded  api"), "{out}");
        assert!(out.contains("--cursor abc"), "{out}");
    }
}
