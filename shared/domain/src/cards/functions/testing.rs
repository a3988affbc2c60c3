//! What the tests of every family share: running a card of a family with a frozen step time and a
//! real expression evaluator.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cards::spec::{CardError, CardKind, CardSpec, PureContext};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-30T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn eval(expr: &str, bindings: &[(&str, &Value)]) -> Result<Value, String> {
    let ctx = crate::template::with_bindings(
        &crate::template::to_value(&json!({ "vars": { "limit": 2 } })),
        bindings,
    );
    crate::template::eval_expression(expr, &ctx).map_err(|err| err.to_string())
}

/// Runs `card`, one of `cards`, with `input`, and returns what it answers.
pub fn run_in(cards: &[CardSpec], card: &str, input: Value) -> Result<Value, CardError> {
    let spec = cards
        .iter()
        .find(|spec| spec.name == card)
        .unwrap_or_else(|| panic!("no card {card}"));
    let CardKind::Pure(run) = spec.kind else {
        panic!("{card} is not pure")
    };
    let Value::Object(input) = input else {
        panic!("input must be an object")
    };
    let ctx = PureContext {
        now: now(),
        eval: &eval,
    };
    run(&input, &ctx)
}

/// Runs `card`, one of `cards`, with `input`; `expected` is the output or a fragment of the error
/// message (`field \`x\`: ...`).
pub fn check_in(cards: &[CardSpec], card: &str, input: Value, expected: Result<Value, &str>) {
    let spec = cards
        .iter()
        .find(|spec| spec.name == card)
        .unwrap_or_else(|| panic!("no card {card}"));
    let CardKind::Pure(run) = spec.kind else {
        panic!("{card} is not pure")
    };
    let Value::Object(input) = input else {
        panic!("input must be an object")
    };
    let ctx = PureContext {
        now: now(),
        eval: &eval,
    };
    let got = run(&input, &ctx);
    match expected {
        Ok(value) => assert_eq!(got, Ok(value), "{card} {input:?}"),
        Err(fragment) => {
            let err = got.expect_err(&format!("{card} {input:?} should fail"));
            assert!(
                matches!(err, CardError::InvalidInput { .. }),
                "{card}: {err:?}"
            );
            assert!(
                err.to_string().contains(fragment),
                "{card}: `{err}` lacks `{fragment}`"
            );
        }
    }
}
