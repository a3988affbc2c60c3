//! Delegated flows in the domain: the inputs a delegated caller may give, and the report of a run's
//! outcome to the access request that started it. The HTTP side (listing, authenticating callers,
//! `POST …/run`) is the `web` crate's.

use serde_json::{Map, Value, json};

use crate::cards::CardCall;
use crate::model::{DelegatedInput, DelegatedTrigger, InputType, Trigger};
use crate::run::{Run, RunError, RunId, TriggerInfo};
use crate::runner::driver::execute_card;
use crate::runner::runtime::Runtime;

/// The input every delegated flow accepts besides its declared ones: the access request to report to.
pub const ACCESS_REQUEST_ID: &str = "accessRequestId";
/// The card that posts a run's outcome to its access request.
pub const REPORT_CARD: &str = "oig.create_request_message";
/// The longest message `oig.create_request_message` takes.
pub const REPORT_MAX_CHARS: usize = 5000;

/// Checks a delegated run's inputs and returns the run input: declared inputs (and
/// `accessRequestId`) only, `null` treated as absent.
pub fn validate_inputs(
    flow: &str,
    trigger: &DelegatedTrigger,
    body: Value,
) -> Result<Value, String> {
    let Value::Object(given) = body else {
        return Err(format!(
            "the inputs must be a JSON object, got {}",
            describe_value(&body)
        ));
    };
    let mut input = Map::new();
    for (name, value) in given {
        if value.is_null() {
            continue;
        }
        match trigger.inputs.get(&name) {
            Some(declared) => check_value(&name, declared, &value)?,
            None if name == ACCESS_REQUEST_ID => {
                if value.as_str().is_none_or(|s| s.trim().is_empty()) {
                    return Err(format!(
                        "input `{ACCESS_REQUEST_ID}` must be non-empty text, got {}",
                        describe_value(&value)
                    ));
                }
            }
            None => {
                let mut known: Vec<&str> = trigger.inputs.keys().map(String::as_str).collect();
                if !trigger.inputs.contains_key(ACCESS_REQUEST_ID) {
                    known.push(ACCESS_REQUEST_ID);
                }
                return Err(format!(
                    "unknown input `{name}`: flow `{flow}` takes {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        input.insert(name, value);
    }
    for (name, declared) in &trigger.inputs {
        if declared.required && !input.contains_key(name) {
            return Err(format!(
                "input `{name}` is required ({})",
                declared.kind.as_str()
            ));
        }
    }
    Ok(Value::Object(input))
}

fn check_value(name: &str, declared: &DelegatedInput, value: &Value) -> Result<(), String> {
    let kind = declared.kind;
    if value.is_object() || value.is_array() {
        return Err(format!(
            "input `{name}` must be {}, got {}; delegated inputs take single scalar values",
            kind.as_str(),
            describe_value(value)
        ));
    }
    let ok = match kind {
        InputType::Text => value.is_string(),
        InputType::Number => value.is_number(),
        InputType::Boolean => value.is_boolean(),
        InputType::Datetime => {
            let text = value.as_str().unwrap_or("");
            if value.is_string() && chrono::DateTime::parse_from_rfc3339(text).is_err() {
                return Err(format!(
                    "input `{name}` must be an RFC 3339 date-time such as 2025-01-31T17:00:00Z, got `{}`",
                    text.chars().take(40).collect::<String>()
                ));
            }
            value.is_string()
        }
        // The parser admits scalar kinds only; anything scalar passes for the others.
        InputType::Object | InputType::List | InputType::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "input `{name}` must be {}, got {}",
            kind.as_str(),
            describe_value(value)
        ))
    }
}

fn describe_value(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What a delegated run owes its access request, taken from the run as it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingReport {
    pub run_id: RunId,
    pub flow: String,
    pub flow_version: String,
    /// The access request id (`accessRequestId` input).
    pub request: String,
    pub succeeded: bool,
    /// The returned body as text, or the error message.
    pub result: String,
}

/// The report of a run that is ending, when it is a delegated run given an `accessRequestId`.
/// Cheap for every other run (no clone); whether the flow asked for reports is decided in
/// [`send_report`], which has the flow.
pub fn pending_report(
    run: &Run,
    output: Option<&Value>,
    error: Option<&RunError>,
) -> Option<PendingReport> {
    if !matches!(run.trigger, TriggerInfo::Delegated(_)) {
        return None;
    }
    let request = run
        .input
        .get(ACCESS_REQUEST_ID)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())?;
    let result = match (error, output) {
        (Some(e), _) => e.message.clone(),
        (None, Some(output)) => match output.get("body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        },
        (None, None) => String::new(),
    };
    Some(PendingReport {
        run_id: run.id,
        flow: run.flow.clone(),
        flow_version: run.flow_version.clone(),
        request: request.to_owned(),
        succeeded: error.is_none(),
        result,
    })
}

/// The message posted to the access request.
pub fn report_message(report: &PendingReport, description: Option<&str>) -> String {
    let mut message = format!(
        "idflow flow `{}` {} (run {}).",
        report.flow,
        if report.succeeded {
            "succeeded"
        } else {
            "failed"
        },
        report.run_id
    );
    if let Some(description) = description.map(str::trim).filter(|d| !d.is_empty()) {
        message.push('\n');
        message.push_str(description);
    }
    if !report.result.trim().is_empty() {
        message.push_str(if report.succeeded {
            "\nResult: "
        } else {
            "\nError: "
        });
        message.push_str(report.result.trim());
    }
    if message.chars().count() > REPORT_MAX_CHARS {
        message = message.chars().take(REPORT_MAX_CHARS - 1).collect();
        message.push('…');
    }
    message
}

/// Posts a run's outcome to its access request with the `oig` executor, when the flow has
/// `report_to_request: true`. Best effort and never fails the run (it has already ended): problems
/// are logged. One retry for retryable card errors.
pub async fn send_report(runtime: &Runtime, report: PendingReport) {
    let flow = match runtime
        .flow_version(&report.flow, &report.flow_version)
        .await
    {
        Ok(flow) => flow,
        Err(error) => {
            tracing::warn!(run_id = %report.run_id, error = %error, "access request report skipped");
            return;
        }
    };
    let Trigger::Delegated(trigger) = &flow.flow.trigger else {
        return;
    };
    if !trigger.report_to_request {
        return;
    }
    let Some(executor) = runtime.executor("oig") else {
        tracing::warn!(run_id = %report.run_id, request = %report.request, "access request report not sent: no `oig` card executor in this deployment");
        return;
    };
    let message = report_message(&report, flow.flow.description.as_deref());
    let timeout = std::time::Duration::from_secs(30);
    for attempt in 1..=2 {
        let call = CardCall {
            card: REPORT_CARD.to_owned(),
            input: json!({ "request": report.request, "message": message }),
            timeout,
            run_id: report.run_id,
            step: "report_to_request".to_owned(),
            attempt,
            project: runtime.project(),
        };
        let result = execute_card(Some(executor.clone()), call, runtime.clock()).await;
        match result {
            Ok(_) => {
                tracing::info!(run_id = %report.run_id, request = %report.request, "outcome posted to the access request");
                return;
            }
            Err(error) if attempt == 1 && error.is_retryable() => {
                tracing::warn!(run_id = %report.run_id, error = %error, "access request report failed, retrying once");
            }
            Err(error) => {
                tracing::warn!(run_id = %report.run_id, request = %report.request, error = %error, "access request report not sent");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn trigger() -> DelegatedTrigger {
        let input = |kind, required| DelegatedInput {
            kind,
            required,
            description: None,
        };
        DelegatedTrigger {
            inputs: BTreeMap::from([
                ("email".to_owned(), input(InputType::Text, true)),
                ("days".to_owned(), input(InputType::Number, false)),
                ("until".to_owned(), input(InputType::Datetime, false)),
                ("urgent".to_owned(), input(InputType::Boolean, false)),
            ]),
            callers: vec!["ops".into()],
            report_to_request: true,
        }
    }

    fn check(body: Value, expected: Result<Value, &str>) {
        let got = validate_inputs("badge", &trigger(), body.clone());
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "{body}"
        );
    }

    #[test]
    fn inputs_are_scalars_of_their_declared_type() {
        check(json!({"email": "a@x"}), Ok(json!({"email": "a@x"})));
        check(
            json!({"email": "a@x", "days": 3, "until": "2025-01-31T17:00:00+01:00", "urgent": true, "accessRequestId": "req123"}),
            Ok(
                json!({"email": "a@x", "days": 3, "until": "2025-01-31T17:00:00+01:00", "urgent": true, "accessRequestId": "req123"}),
            ),
        );
        check(
            json!({"email": "a@x", "days": null}),
            Ok(json!({"email": "a@x"})),
        );
        check(json!({}), Err("input `email` is required (text)"));
        check(
            json!({"email": null}),
            Err("input `email` is required (text)"),
        );
        check(
            json!({"email": 5}),
            Err("input `email` must be text, got a number"),
        );
        check(
            json!({"email": "a", "days": "3"}),
            Err("input `days` must be number, got text"),
        );
        check(
            json!({"email": "a", "urgent": "yes"}),
            Err("input `urgent` must be boolean, got text"),
        );
        check(
            json!({"email": "a", "until": "tomorrow"}),
            Err(
                "input `until` must be an RFC 3339 date-time such as 2025-01-31T17:00:00Z, got `tomorrow`",
            ),
        );
        check(
            json!({"email": {"a": 1}}),
            Err(
                "input `email` must be text, got an object; delegated inputs take single scalar values",
            ),
        );
        check(
            json!({"email": "a", "days": [1, 2]}),
            Err(
                "input `days` must be number, got a list; delegated inputs take single scalar values",
            ),
        );
        check(
            json!({"email": "a", "building": "HQ"}),
            Err(
                "unknown input `building`: flow `badge` takes `days`, `email`, `until`, `urgent`, `accessRequestId`",
            ),
        );
        check(
            json!({"email": "a", "accessRequestId": 7}),
            Err("input `accessRequestId` must be non-empty text, got a number"),
        );
        check(
            json!([1]),
            Err("the inputs must be a JSON object, got a list"),
        );
    }

    #[test]
    fn reports_name_the_outcome_the_description_and_the_result() {
        let report = PendingReport {
            run_id: RunId(ulid::Ulid::nil()),
            flow: "badge".into(),
            flow_version: "v".into(),
            request: "req1".into(),
            succeeded: false,
            result: "step `email` failed".into(),
        };
        assert_eq!(
            report_message(&report, Some("Email the badge team")),
            "idflow flow `badge` failed (run 00000000000000000000000000).\nEmail the badge team\nError: step `email` failed"
        );
        let long = PendingReport {
            succeeded: true,
            result: "x".repeat(6000),
            ..report
        };
        let message = report_message(&long, None);
        assert_eq!(message.chars().count(), REPORT_MAX_CHARS);
        assert!(message.starts_with("idflow flow `badge` succeeded"));
    }
}
