//! `list.*`: filtering, finding, mapping, sorting, de-duplicating, joining, cutting and measuring
//! lists.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{Value, json};

use super::path::{Segment, get_path, optional_path_field};
use crate::cards::fields::{Fields, With, invalid, wrong};
use crate::cards::spec::{CardError, CardSpec, FieldSpec, PureContext, PureResult};

const LIST: FieldSpec = FieldSpec::required("list", "list", "the list");
/// The fields of the cards that test each item: `where`, or `key` and `equals`.
const PREDICATE: [FieldSpec; 3] = [
    FieldSpec::optional(
        "where",
        "expression",
        "expression written without `{{ }}`, evaluated per item with `item` and `index` bound, such as `item.status == 'ACTIVE'`",
    ),
    FieldSpec::optional(
        "key",
        "text",
        "instead of `where`: the path inside each item to compare",
    ),
    FieldSpec::optional(
        "equals",
        "any",
        "with `key`: the value to compare with (default true)",
    ),
];

/// The list cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure(
        "list.filter",
        "Keeps the items that match",
        &[LIST, PREDICATE[0], PREDICATE[1], PREDICATE[2]],
        "list of matching items",
        list_filter,
    ),
    CardSpec::pure(
        "list.find",
        "Finds the first item that matches",
        &[LIST, PREDICATE[0], PREDICATE[1], PREDICATE[2]],
        "the first matching item, or `null`",
        list_find,
    ),
    CardSpec::pure(
        "list.map",
        "Transforms every item",
        &[
            LIST,
            FieldSpec::optional(
                "expression",
                "expression",
                "expression written without `{{ }}`, evaluated per item with `item` and `index` bound, such as `item.profile.email`",
            ),
            FieldSpec::optional(
                "key",
                "text",
                "instead of `expression`: the path to read in each item",
            ),
        ],
        "list of results",
        list_map,
    ),
    CardSpec::pure(
        "list.reduce",
        "Folds a list into one value",
        &[
            LIST,
            FieldSpec::required(
                "expression",
                "expression",
                "expression written without `{{ }}`, evaluated per item with `memo` (the value so far), `item` and `index` bound; its result is the next `memo`, such as `memo + item.amount`",
            ),
            FieldSpec::optional("initial", "any", "the first `memo` (default `null`)"),
        ],
        "the last `memo` (`initial` for an empty list)",
        list_reduce,
    ),
    CardSpec::pure(
        "list.length",
        "Counts the items of a list",
        &[LIST],
        "number of items",
        list_length,
    ),
    CardSpec::pure(
        "list.first",
        "The first item",
        &[LIST],
        "the first item, or `null` when the list is empty",
        list_first,
    ),
    CardSpec::pure(
        "list.last",
        "The last item",
        &[LIST],
        "the last item, or `null` when the list is empty",
        list_last,
    ),
    CardSpec::pure(
        "list.sort",
        "Sorts a list",
        &[
            LIST,
            FieldSpec::optional(
                "key",
                "text",
                "path inside each item to sort by (default: the items themselves)",
            ),
            FieldSpec::optional("descending", "boolean", "largest first (default false)"),
        ],
        "the sorted list (stable; null < booleans < numbers < texts < lists < objects)",
        list_sort,
    ),
    CardSpec::pure(
        "list.unique",
        "Removes duplicates, keeping the first",
        &[
            LIST,
            FieldSpec::optional(
                "key",
                "text",
                "path inside each item that must be unique (default: the whole item)",
            ),
        ],
        "list without duplicates",
        list_unique,
    ),
    CardSpec::pure(
        "list.contains",
        "Tells whether a list holds a value",
        &[
            LIST,
            FieldSpec::required("value", "any", "the value to look for"),
        ],
        "`true` or `false`",
        list_contains,
    ),
    CardSpec::pure(
        "list.concat",
        "Joins lists end to end",
        &[FieldSpec::required(
            "lists",
            "list",
            "lists to join; `null` items are skipped",
        )],
        "one list",
        list_concat,
    ),
    CardSpec::pure(
        "list.chunk",
        "Cuts a list into pieces",
        &[
            LIST,
            FieldSpec::required("size", "integer", "items per piece (at least 1)"),
        ],
        "list of lists; the last may be shorter",
        list_chunk,
    ),
    CardSpec::pure(
        "list.slice",
        "A part of a list",
        &[
            LIST,
            FieldSpec::optional(
                "start",
                "integer",
                "first position, negative counts from the end (default 0)",
            ),
            FieldSpec::optional(
                "end",
                "integer",
                "position after the last, negative counts from the end (default: the end)",
            ),
        ],
        "the part",
        list_slice,
    ),
];

/// A test applied to each item: `where` (an expression) or `key` + `equals`.
fn predicate<'a>(
    input: &Fields<'a>,
    ctx: &'a PureContext<'_>,
) -> Result<impl Fn(usize, &Value) -> Result<bool, CardError> + 'a, CardError> {
    let expression = input.optional_text("where")?;
    let key = optional_path_field(input, "key")?;
    if expression.is_some() && key.is_some() {
        return Err(invalid("where", "give either `where` or `key`, not both"));
    }
    if expression.is_none() && key.is_none() {
        return Err(invalid("where", "is required (or give `key` and `equals`)"));
    }
    let equals = input.value("equals").cloned().unwrap_or(Value::Bool(true));
    Ok(
        move |index: usize, item: &Value| match (&expression, &key) {
            (Some(expression), _) => {
                (ctx.eval)(expression, &[("item", item), ("index", &json!(index))])
                    .map(|value| crate::template::truthy(&value))
                    .map_err(|err| invalid("where", format!("item {index}: {err}")))
            }
            (None, Some(key)) => Ok(get_path(item, key) == Some(&equals)
                || (equals.is_null() && get_path(item, key).is_none())),
            (None, None) => Ok(false),
        },
    )
}

fn list_filter(with: &With, ctx: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let test = predicate(&input, ctx)?;
    let mut kept = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if test(index, item)? {
            kept.push(item.clone());
        }
    }
    Ok(Value::Array(kept))
}

fn list_find(with: &With, ctx: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let test = predicate(&input, ctx)?;
    for (index, item) in items.iter().enumerate() {
        if test(index, item)? {
            return Ok(item.clone());
        }
    }
    Ok(Value::Null)
}

fn list_map(with: &With, ctx: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let expression = input.optional_text("expression")?;
    let key = optional_path_field(&input, "key")?;
    let mut results = Vec::with_capacity(items.len());
    match (expression, key) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "expression",
                "give either `expression` or `key`, not both",
            ));
        }
        (None, None) => return Err(invalid("expression", "is required (or give `key`)")),
        (Some(expression), None) => {
            for (index, item) in items.iter().enumerate() {
                let value = (ctx.eval)(&expression, &[("item", item), ("index", &json!(index))])
                    .map_err(|err| invalid("expression", format!("item {index}: {err}")))?;
                results.push(value);
            }
        }
        (None, Some(key)) => results.extend(
            items
                .iter()
                .map(|item| get_path(item, &key).cloned().unwrap_or(Value::Null)),
        ),
    }
    Ok(Value::Array(results))
}

fn list_reduce(with: &With, ctx: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let expression = input.text("expression")?;
    let mut memo = input.value("initial").cloned().unwrap_or(Value::Null);
    for (index, item) in items.iter().enumerate() {
        memo = (ctx.eval)(
            &expression,
            &[("memo", &memo), ("item", item), ("index", &json!(index))],
        )
        .map_err(|err| invalid("expression", format!("item {index}: {err}")))?;
    }
    Ok(memo)
}

fn list_length(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(Fields::strict(with).list("list")?.len()))
}

fn list_first(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(Fields::strict(with)
        .list("list")?
        .first()
        .cloned()
        .unwrap_or(Value::Null))
}

fn list_last(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(Fields::strict(with)
        .list("list")?
        .last()
        .cloned()
        .unwrap_or(Value::Null))
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order on JSON values for sorting.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a
                .as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&b.as_f64().unwrap_or(f64::NAN)),
        },
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .map(|(a, b)| compare(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(a.len().cmp(&b.len())),
        (Value::Object(a), Value::Object(b)) => a.len().cmp(&b.len()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The `key` path of the sorting and de-duplicating cards; absent is the item itself.
fn item_key(input: &Fields<'_>) -> Result<Vec<Segment>, CardError> {
    Ok(optional_path_field(input, "key")?.unwrap_or_default())
}

fn list_sort(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let mut items = input.list("list")?.to_vec();
    let key = item_key(&input)?;
    let descending = input.boolean_or("descending", false)?;
    items.sort_by(|a, b| {
        let order = compare(
            get_path(a, &key).unwrap_or(&Value::Null),
            get_path(b, &key).unwrap_or(&Value::Null),
        );
        if descending { order.reverse() } else { order }
    });
    Ok(Value::Array(items))
}

fn list_unique(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let key = item_key(&input)?;
    let mut seen = HashSet::new();
    let unique: Vec<Value> = items
        .iter()
        .filter(|item| seen.insert(get_path(item, &key).unwrap_or(&Value::Null).to_string()))
        .cloned()
        .collect();
    Ok(Value::Array(unique))
}

fn list_contains(with: &With, _: &PureContext<'_>) -> PureResult {
    let needle = with.get("value").unwrap_or(&Value::Null);
    Ok(json!(Fields::strict(with).list("list")?.contains(needle)))
}

fn list_concat(with: &With, _: &PureContext<'_>) -> PureResult {
    let mut joined = Vec::new();
    for (index, item) in Fields::strict(with).list("lists")?.iter().enumerate() {
        match item {
            Value::Null => {}
            Value::Array(items) => joined.extend(items.iter().cloned()),
            other => return Err(wrong(&format!("lists[{index}]"), "a list", other)),
        }
    }
    Ok(Value::Array(joined))
}

fn list_chunk(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let size = input.integer("size")?;
    let size = usize::try_from(size)
        .ok()
        .filter(|size| *size >= 1)
        .ok_or_else(|| invalid("size", format!("expected at least 1, got {size}")))?;
    Ok(Value::Array(
        items
            .chunks(size)
            .map(|chunk| Value::Array(chunk.to_vec()))
            .collect(),
    ))
}

fn list_slice(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let len = items.len() as i64;
    let clamp = |position: i64| -> usize {
        let position = if position < 0 {
            len + position
        } else {
            position
        };
        position.clamp(0, len) as usize
    };
    let start = clamp(input.optional_integer("start")?.unwrap_or(0));
    let end = clamp(input.optional_integer("end")?.unwrap_or(len));
    Ok(Value::Array(if start < end {
        items[start..end].to_vec()
    } else {
        Vec::new()
    }))
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
    fn list_cards() {
        let users = json!([
            { "id": 1, "status": "ACTIVE", "n": 3 },
            { "id": 2, "status": "SUSPENDED", "n": 1 },
            { "id": 3, "status": "ACTIVE", "n": 2 },
        ]);
        check(
            "list.filter",
            json!({ "list": users, "where": "item.status == 'ACTIVE'" }),
            Ok(json!([users[0], users[2]])),
        );
        check(
            "list.filter",
            json!({ "list": users, "where": "item.n >= vars.limit and index > 0" }),
            Ok(json!([users[2]])),
        );
        check(
            "list.filter",
            json!({ "list": users, "key": "status", "equals": "SUSPENDED" }),
            Ok(json!([users[1]])),
        );
        check(
            "list.filter",
            json!({ "list": [{ "on": true }, { "on": false }], "key": "on" }),
            Ok(json!([{ "on": true }])),
        );
        check(
            "list.filter",
            json!({ "list": users }),
            Err("field `where`: is required"),
        );
        check(
            "list.filter",
            json!({ "list": users, "where": "item.x.y ==" }),
            Err("field `where`: item 0: "),
        );
        check(
            "list.find",
            json!({ "list": users, "where": "item.id == 3" }),
            Ok(users[2].clone()),
        );
        check(
            "list.find",
            json!({ "list": users, "key": "id", "equals": 9 }),
            Ok(json!(null)),
        );
        check(
            "list.map",
            json!({ "list": users, "expression": "item.id * 10" }),
            Ok(json!([10, 20, 30])),
        );
        check(
            "list.map",
            json!({ "list": users, "key": "status" }),
            Ok(json!(["ACTIVE", "SUSPENDED", "ACTIVE"])),
        );
        check(
            "list.map",
            json!({ "list": users, "expression": "item.nope" }),
            Err("field `expression`: item 0: undefined value `item.nope`"),
        );
        check("list.length", json!({ "list": users }), Ok(json!(3)));
        check("list.first", json!({ "list": [] }), Ok(json!(null)));
        check("list.first", json!({ "list": [4, 5] }), Ok(json!(4)));
        check("list.last", json!({ "list": [4, 5] }), Ok(json!(5)));
        check(
            "list.sort",
            json!({ "list": [3, 1.5, "b", null, 2, "a", true] }),
            Ok(json!([null, true, 1.5, 2, 3, "a", "b"])),
        );
        check(
            "list.sort",
            json!({ "list": users, "key": "n", "descending": true }),
            Ok(json!([users[0], users[2], users[1]])),
        );
        check(
            "list.unique",
            json!({ "list": [1, 2, 1, "1", 2] }),
            Ok(json!([1, 2, "1"])),
        );
        check(
            "list.unique",
            json!({ "list": users, "key": "status" }),
            Ok(json!([users[0], users[1]])),
        );
        check(
            "list.contains",
            json!({ "list": [1, "a"], "value": "a" }),
            Ok(json!(true)),
        );
        check(
            "list.concat",
            json!({ "lists": [[1], null, [2, 3]] }),
            Ok(json!([1, 2, 3])),
        );
        check(
            "list.concat",
            json!({ "lists": [[1], 2] }),
            Err("field `lists[1]`: expected a list"),
        );
        check(
            "list.chunk",
            json!({ "list": [1, 2, 3, 4, 5], "size": 2 }),
            Ok(json!([[1, 2], [3, 4], [5]])),
        );
        check(
            "list.chunk",
            json!({ "list": [1], "size": 0 }),
            Err("field `size`: expected at least 1"),
        );
        check(
            "list.chunk",
            json!({ "list": [1], "size": "2" }),
            Err("field `size`: expected a whole number"),
        );
        check(
            "list.slice",
            json!({ "list": [1, 2, 3, 4], "start": 1, "end": -1 }),
            Ok(json!([2, 3])),
        );
        check(
            "list.slice",
            json!({ "list": [1, 2, 3], "start": -2 }),
            Ok(json!([2, 3])),
        );
        check(
            "list.slice",
            json!({ "list": [1, 2, 3], "start": 5 }),
            Ok(json!([])),
        );
    }

    #[test]
    fn reduce_folds_left_to_right_from_the_initial_memo() {
        check(
            "list.reduce",
            json!({ "list": [1, 2, 3], "expression": "memo + item", "initial": 10 }),
            Ok(json!(16)),
        );
        check(
            "list.reduce",
            json!({
                "list": [{ "g": "a" }, { "g": "b" }, { "g": "a" }],
                "expression": "memo + [item.g ~ index] if item.g == 'a' else memo",
                "initial": [],
            }),
            Ok(json!(["a0", "a2"])),
        );
        check(
            "list.reduce",
            json!({ "list": [], "expression": "memo + item", "initial": "x" }),
            Ok(json!("x")),
        );
        check(
            "list.reduce",
            json!({ "list": [1], "expression": "memo" }),
            Ok(json!(null)),
        );
        check(
            "list.reduce",
            json!({ "list": [1, 2], "expression": "memo.nope.deeper" }),
            Err("field `expression`: item 0:"),
        );
        check(
            "list.reduce",
            json!({ "list": [1] }),
            Err("field `expression`: is required"),
        );
    }
}
