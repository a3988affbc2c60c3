//! JSON views of flows for the admin API (and so the console): a trigger's one-line summary, a
//! flow's steps as a tree of boxes and a schedule's next fire times.

use serde_json::{Value, json};

use domain::model::{LoopBody, OnError, Step, StepKind, Trigger};

/// The trigger as the console shows it: its kind and a one-line summary.
pub fn trigger_json(trigger: &Trigger) -> Value {
    json!({ "kind": trigger.kind(), "summary": trigger.summary() })
}

/// Fire times of a schedule flow listed on its page.
pub const NEXT_FIRES: usize = 5;

/// The next [`NEXT_FIRES`] fire times of a schedule after `now`, through the same schedule module
/// the schedulers use. A `rate(…)` counts from `now` here, while a scheduler counts from when it
/// loaded the schedule, so its times may be shifted by less than one interval.
pub fn next_fires(
    expression: &str,
    timezone: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    let Ok(schedule) = domain::schedule::Schedule::parse(expression, timezone) else {
        return Vec::new();
    };
    let mut fires = Vec::new();
    let mut after = now;
    while fires.len() < NEXT_FIRES {
        match schedule.next_after(after, now) {
            Some(next) if next > after => {
                fires.push(next);
                after = next;
            }
            _ => break,
        }
    }
    fires
}

/// A flow's steps as a tree of boxes: `{key, kind, label, helper?, children: [{label, steps}]}`.
/// `helper` names the flow a step calls (`flow.call` with a literal `flow`, or a loop over a flow).
/// `name` is the step's history name without loop iteration prefixes ([`Step::history_name`]), so a
/// record `printed[0].printed.steps.0` belongs to the box named `printed.steps.0`.
pub fn chart(steps: &[Step]) -> Value {
    steps_json(steps, None)
}

fn steps_json(steps: &[Step], parent: Option<(&str, &str)>) -> Value {
    Value::Array(
        steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                step_json(
                    step,
                    step.history_name(parent.map(|(p, branch)| (p, branch, index))),
                )
            })
            .collect(),
    )
}

fn step_json(step: &Step, name: String) -> Value {
    let branch = |branch: &str, steps: &[Step]| steps_json(steps, Some((&name, branch)));
    let mut helper = None;
    let mut children = Vec::new();
    let (kind, label) = match &step.kind {
        StepKind::Card { card, with } => {
            if card == "flow.call" {
                helper = with
                    .get("flow")
                    .and_then(Value::as_str)
                    .filter(|f| !f.contains("{{"))
                    .map(str::to_owned);
            }
            ("card", card.clone())
        }
        StepKind::If {
            condition,
            then,
            otherwise,
        } => {
            children.push(json!({ "label": "then", "steps": branch("then", then) }));
            if !otherwise.is_empty() {
                children.push(json!({ "label": "else", "steps": branch("else", otherwise) }));
            }
            ("if", condition.clone())
        }
        StepKind::ContinueIf { condition } => ("continue_if", condition.clone()),
        StepKind::Loop(l) => {
            let verb = if l.collect { "map" } else { "for_each" };
            match &l.body {
                LoopBody::Steps(body) => children.push(
                    json!({ "label": format!("each {}", l.var), "steps": branch("steps", body) }),
                ),
                LoopBody::Flow { flow, .. } => helper = Some(flow.clone()),
            }
            (verb, l.items.clone())
        }
        StepKind::Try { steps, catch } => {
            children.push(json!({ "label": "try", "steps": branch("try", steps) }));
            children.push(json!({ "label": "catch", "steps": branch("catch", catch) }));
            ("try", String::new())
        }
        StepKind::Wait { duration } => ("wait", format!("{}s", duration.as_secs())),
        StepKind::WaitUntil { until } => ("wait_until", until.clone()),
    };
    if let OnError::Steps(handler) = &step.on_error {
        children.push(json!({ "label": "on error", "steps": branch("on_error", handler) }));
    }
    let mut v = json!({
        "key": step.key,
        "name": name,
        "named": step.has_id,
        "kind": kind,
        "label": label,
        "line": step.location.line,
        "children": children,
    });
    if let Some(guard) = &step.guard {
        v["guard"] = json!(guard);
    }
    if let Some(helper) = helper {
        v["helper"] = json!(helper);
    }
    if matches!(step.on_error, OnError::Continue) {
        v["onError"] = json!("continue");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart_of(yaml: &str) -> Value {
        let flow = domain::flowfile::parse_flow("t.yaml", yaml).expect("flow parses");
        chart(&flow.steps)
    }

    /// Keeps `key`, `kind`, `helper` and children labels: what the chart draws.
    fn outline(steps: &Value) -> Value {
        Value::Array(
            steps
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| {
                    let mut o = json!({ "key": s["key"], "kind": s["kind"] });
                    if !s["helper"].is_null() {
                        o["helper"] = s["helper"].clone();
                    }
                    for child in s["children"].as_array().expect("children") {
                        o[child["label"].as_str().expect("label")] = outline(&child["steps"]);
                    }
                    o
                })
                .collect(),
        )
    }

    fn check(yaml: &str, expected: Value) {
        assert_eq!(outline(&chart_of(yaml)), expected, "{yaml}");
    }

    #[test]
    fn chart_shows_branches_loops_and_helper_calls() {
        check(
            "name: t\nsteps:\n  - id: a\n    card: text.compose\n    with: { text: x }\n  - id: b\n    if: \"{{ true }}\"\n    then:\n      - id: c\n        card: flow.call\n        with: { flow: helper-one }\n    else:\n      - id: d\n        map: \"{{ [1] }}\"\n        flow: helper-two\n",
            json!([
                { "key": "a", "kind": "card" },
                { "key": "b", "kind": "if",
                  "then": [{ "key": "c", "kind": "card", "helper": "helper-one" }],
                  "else": [{ "key": "d", "kind": "map", "helper": "helper-two" }] },
            ]),
        );
        check(
            "name: t\nsteps:\n  - id: each\n    for_each: \"{{ [1, 2] }}\"\n    steps:\n      - id: inner\n        card: text.compose\n        with: { text: x }\n",
            json!([{ "key": "each", "kind": "for_each", "each item": [{ "key": "inner", "kind": "card" }] }]),
        );
    }
}
