//! `flow.assign`: the pure card of the `flow` family (the others, `flow.call`, `flow.return` and
//! `flow.fail`, are handled by the engine itself).

use serde_json::Value;

use crate::cards::fields::With;
use crate::cards::spec::{CardKind, CardSpec, PureContext, PureResult};

/// `flow.assign`.
pub const CARDS: &[CardSpec] = &[CardSpec {
    name: "flow.assign",
    summary: "Names values: any fields you write become the step's output",
    fields: &[],
    output: "the rendered `with` object, so `steps.<id>.<field>` reads each value",
    kind: CardKind::Pure(flow_assign),
    open: true,
}];

fn flow_assign(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(Value::Object(with.clone()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::CARDS;
    use crate::cards::functions::testing::check_in;

    fn check(card: &str, input: Value, expected: Result<Value, &str>) {
        check_in(CARDS, card, input, expected);
    }

    #[test]
    fn assign_names_values() {
        check(
            "flow.assign",
            json!({ "total": 3, "name": "x" }),
            Ok(json!({ "total": 3, "name": "x" })),
        );
    }
}
