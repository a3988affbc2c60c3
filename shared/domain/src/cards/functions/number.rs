//! `number.*`: arithmetic, rounding, random numbers and reading numbers from text. Integers stay integers wherever
//! the inputs are; an overflow falls back to floating point.

use serde_json::{Value, json};

use super::text::TEXT;
use crate::cards::fields::{Fields, With, invalid, text_of};
use crate::cards::spec::{CardError, CardSpec, FieldSpec, PureContext, PureResult};

const A: FieldSpec = FieldSpec::required("a", "number", "a number");
const B: FieldSpec = FieldSpec::required("b", "number", "a number");

/// The number cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure("number.add", "a + b", &[A, B], "the sum", number_add),
    CardSpec::pure(
        "number.subtract",
        "a - b",
        &[A, B],
        "the difference",
        number_subtract,
    ),
    CardSpec::pure(
        "number.multiply",
        "a × b",
        &[A, B],
        "the product",
        number_multiply,
    ),
    CardSpec::pure(
        "number.divide",
        "a ÷ b",
        &[
            A,
            FieldSpec::required("b", "number", "a number other than 0"),
        ],
        "the quotient; an integer when both are integers and it divides exactly",
        number_divide,
    ),
    CardSpec::pure(
        "number.round",
        "Rounds a number",
        &[
            FieldSpec::required("value", "number", "a number"),
            FieldSpec::optional(
                "places",
                "integer",
                "digits after the point, 0 to 15 (default 0)",
            ),
        ],
        "the rounded number; an integer with 0 places",
        number_round,
    ),
    CardSpec::pure(
        "number.random",
        "A random whole number in a range",
        &[
            FieldSpec::required("min", "integer", "the smallest possible value"),
            FieldSpec::required(
                "max",
                "integer",
                "the bound above the largest possible value (exclusive; greater than `min`)",
            ),
        ],
        "a whole number with `min` <= n < `max`; not for secrets, and the one card whose output differs from run to run",
        number_random,
    ),
    CardSpec::pure(
        "number.parse",
        "Reads a number from text",
        &[TEXT],
        "the number; an integer when the text is one",
        number_parse,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn float(self) -> f64 {
        match self {
            Num::Int(int) => int as f64,
            Num::Float(float) => float,
        }
    }
}

fn number(input: &Fields<'_>, field: &str) -> Result<Num, CardError> {
    let number = input.number(field)?;
    Ok(number
        .as_i64()
        .map_or_else(|| Num::Float(number.as_f64().unwrap_or(f64::NAN)), Num::Int))
}

fn num_json(value: Num, field: &str) -> PureResult {
    match value {
        Num::Int(int) => Ok(json!(int)),
        Num::Float(float) => serde_json::Number::from_f64(float)
            .map(Value::Number)
            .ok_or_else(|| invalid(field, "the result is not a finite number")),
    }
}

fn arithmetic(
    with: &With,
    ints: fn(i64, i64) -> Option<i64>,
    floats: fn(f64, f64) -> f64,
) -> PureResult {
    let input = Fields::strict(with);
    let a = number(&input, "a")?;
    let b = number(&input, "b")?;
    let result = match (a, b) {
        // Overflow falls back to floating point rather than failing the step.
        (Num::Int(a), Num::Int(b)) => {
            ints(a, b).map_or_else(|| Num::Float(floats(a as f64, b as f64)), Num::Int)
        }
        _ => Num::Float(floats(a.float(), b.float())),
    };
    num_json(result, "a")
}

fn number_add(with: &With, _: &PureContext<'_>) -> PureResult {
    arithmetic(with, i64::checked_add, |a, b| a + b)
}

fn number_subtract(with: &With, _: &PureContext<'_>) -> PureResult {
    arithmetic(with, i64::checked_sub, |a, b| a - b)
}

fn number_multiply(with: &With, _: &PureContext<'_>) -> PureResult {
    arithmetic(with, i64::checked_mul, |a, b| a * b)
}

fn number_divide(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let a = number(&input, "a")?;
    let b = number(&input, "b")?;
    if b.float() == 0.0 {
        return Err(invalid("b", "cannot divide by zero"));
    }
    let result = match (a, b) {
        (Num::Int(a), Num::Int(b)) if a.checked_rem(b) == Some(0) => a
            .checked_div(b)
            .map_or(Num::Float(a as f64 / b as f64), Num::Int),
        _ => Num::Float(a.float() / b.float()),
    };
    num_json(result, "a")
}

fn number_round(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let value = number(&input, "value")?;
    let places = input.optional_integer("places")?.unwrap_or(0);
    if !(0..=15).contains(&places) {
        return Err(invalid("places", format!("expected 0 to 15, got {places}")));
    }
    match value {
        Num::Int(int) => Ok(json!(int)),
        Num::Float(float) if places == 0 => {
            let rounded = float.round();
            if rounded.abs() < 9.0e15 {
                Ok(json!(rounded as i64))
            } else {
                num_json(Num::Float(rounded), "value")
            }
        }
        Num::Float(float) => {
            let scale = 10f64.powi(places as i32);
            num_json(Num::Float((float * scale).round() / scale), "value")
        }
    }
}

/// A uniformly drawn whole number in `min..max`. The draw comes from the standard library's
/// per-process random hashing keys (each `RandomState` is freshly keyed), so the card needs no
/// random-number crate; it is not meant for secrets (tokens belong to the systems that check them).
fn number_random(with: &With, _: &PureContext<'_>) -> PureResult {
    use std::hash::{BuildHasher, Hasher};

    let input = Fields::strict(with);
    let min = input.integer("min")?;
    let max = input.integer("max")?;
    if max <= min {
        return Err(invalid(
            "max",
            format!("must be greater than `min` ({min}), got {max}"),
        ));
    }
    let span = u128::from(max.abs_diff(min));
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    let draw = u128::from(hasher.finish());
    // Scales 64 random bits onto the span: the bias is below span / 2^64, far under anything a
    // flow could notice.
    let offset = (draw * span) >> 64;
    let value = i128::from(min) + i128::try_from(offset).unwrap_or(0);
    Ok(json!(i64::try_from(value).unwrap_or(min)))
}

fn number_parse(with: &With, _: &PureContext<'_>) -> PureResult {
    let value = Fields::strict(with).required("text")?;
    if let Value::Number(_) = value {
        return Ok(value.clone());
    }
    let text = text_of(value, "text")?;
    let trimmed = text.trim();
    if let Ok(int) = trimmed.parse::<i64>() {
        return Ok(json!(int));
    }
    match trimmed.parse::<f64>() {
        Ok(float) if float.is_finite() => num_json(Num::Float(float), "text"),
        _ => Err(invalid(
            "text",
            format!("expected a number, got text \"{trimmed}\""),
        )),
    }
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
    fn number_cards() {
        check("number.add", json!({ "a": 2, "b": 3 }), Ok(json!(5)));
        check("number.add", json!({ "a": 2, "b": 0.5 }), Ok(json!(2.5)));
        check(
            "number.add",
            json!({ "a": i64::MAX, "b": 1 }),
            Ok(json!(9.223372036854776e18)),
        );
        check(
            "number.add",
            json!({ "a": "2", "b": 3 }),
            Err("field `a`: expected a number, got text \"2\" (use number.parse"),
        );
        check(
            "number.add",
            json!({ "b": 3 }),
            Err("field `a`: is required"),
        );
        check("number.subtract", json!({ "a": 2, "b": 3 }), Ok(json!(-1)));
        check("number.multiply", json!({ "a": 4, "b": 3 }), Ok(json!(12)));
        check("number.divide", json!({ "a": 6, "b": 3 }), Ok(json!(2)));
        check("number.divide", json!({ "a": 7, "b": 2 }), Ok(json!(3.5)));
        check(
            "number.divide",
            json!({ "a": 7, "b": 0 }),
            Err("field `b`: cannot divide by zero"),
        );
        check(
            "number.divide",
            json!({ "a": 7, "b": 0.0 }),
            Err("field `b`: cannot divide by zero"),
        );
        check(
            "number.round",
            json!({ "value": 2.567, "places": 2 }),
            Ok(json!(2.57)),
        );
        check("number.round", json!({ "value": 2.5 }), Ok(json!(3)));
        check("number.round", json!({ "value": 7 }), Ok(json!(7)));
        check(
            "number.round",
            json!({ "value": 1.0, "places": 99 }),
            Err("field `places`: expected 0 to 15"),
        );
        check("number.parse", json!({ "text": " 42 " }), Ok(json!(42)));
        check("number.parse", json!({ "text": "-1.25" }), Ok(json!(-1.25)));
        check("number.parse", json!({ "text": 7 }), Ok(json!(7)));
        check(
            "number.parse",
            json!({ "text": "NaN" }),
            Err("field `text`: expected a number"),
        );
        check(
            "number.parse",
            json!({ "text": "12 apples" }),
            Err("field `text`: expected a number"),
        );
    }

    #[test]
    fn random_numbers_stay_in_their_range_and_vary() {
        use crate::cards::functions::testing::run_in;

        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let value =
                run_in(CARDS, "number.random", json!({ "min": -2, "max": 3 })).expect("a number");
            let n = value.as_i64().expect("an integer");
            assert!((-2..3).contains(&n), "{n} is outside -2..3");
            seen.insert(n);
        }
        // 200 draws over 5 values miss one with probability about 5 × 0.8^200: never in practice.
        assert_eq!(seen.len(), 5, "{seen:?}");
        let wide = run_in(
            CARDS,
            "number.random",
            json!({ "min": i64::MIN, "max": i64::MAX }),
        )
        .expect("a number");
        assert!(wide.is_i64());
        check(
            "number.random",
            json!({ "min": 5, "max": 5 }),
            Err("field `max`: must be greater than `min` (5), got 5"),
        );
        check(
            "number.random",
            json!({ "min": 0, "max": 1.5 }),
            Err("field `max`: expected a whole number"),
        );
        check("number.random", json!({ "min": 0, "max": 1 }), Ok(json!(0)));
    }
}
