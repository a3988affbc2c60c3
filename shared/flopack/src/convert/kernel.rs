//! Okta Workflows' built-in cards: flow control, text, lists, objects, dates, numbers, JSON.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Converted, Cx, Gap, Val, loop_over_helper};
use crate::expr::{self, Out, Seg, Shape, string_literal};
use crate::flow::{Step, StepKind, Tv, literal_text};
use crate::pack::{Body, Card, Io, IoType};
use crate::structure::Node;

// ---------------------------------------------------------------------------------------------
// Conditions

/// The condition of a card with `left-operand`, `operator` and `right-operand` (in `group`).
pub(crate) fn condition(
    cx: &mut Cx<'_>,
    card: &Card,
    group: Option<&str>,
    steps: &mut Vec<Step>,
) -> Result<String, Gap> {
    let find = |key: &str| -> Option<&Io> {
        card.inputs.iter().find(|io| {
            io.key == key
                && match group {
                    Some(g) => io.group.as_deref() == Some(g),
                    None => io.group.is_none(),
                }
        })
    };
    let operator = find("operator")
        .and_then(|io| io.text().map(str::to_owned))
        .unwrap_or_else(|| "==".into());
    let left = match find("left-operand") {
        Some(io) => operand(cx, card, io, steps),
        None => "none".into(),
    };
    let right_io = find("right-operand");
    let right = match right_io {
        Some(io) => operand(cx, card, io, steps),
        None => "none".into(),
    };
    // Okta Workflows compares loosely: a number against the text "3" is equal. Comparing as text
    // when the typed value is text that looks like a number or a boolean gives the same answer.
    let right_text = right_io
        .filter(|io| !cx_has_pin(cx, card, io))
        .and_then(|io| io.text())
        .filter(|t| t.parse::<f64>().is_ok() || matches!(*t, "true" | "false"));
    let left_cmp = match right_text {
        Some(_) => format!("({left} | string)"),
        None => left.clone(),
    };
    // Ordering compares numbers when one side is typed as a number in text.
    let number = |side: Option<&Io>, text: &str| -> String {
        match side
            .filter(|io| !cx_has_pin(cx, card, io))
            .and_then(|io| io.text())
        {
            Some(t) if t.trim().parse::<f64>().is_ok() => t.trim().to_owned(),
            _ => text.to_owned(),
        }
    };
    let (left_num, right_num) = (
        number(find("left-operand"), &left),
        number(right_io, &right),
    );
    Ok(match operator.as_str() {
        ">" | ">=" | "<" | "<=" => format!("{left_num} {operator} {right_num}"),
        "==" | "=" | "equal to" => format!("{left_cmp} == {right}"),
        "!=" | "not equal" => format!("{left_cmp} != {right}"),
        "in" => format!("({left} in ({right} or ''))"),
        "contains" => format!("({right} in ({left} or ''))"),
        "starts with" => format!("(({left} or '') is startingwith({right}))"),
        "ends with" => format!("(({left} or '') is endingwith({right}))"),
        "is empty" => is_empty(&left),
        "is not empty" => format!("not {}", is_empty(&left)),
        other => {
            return Err(Gap::new(format!(
                "comparison operator `{other}` has no idflow equivalent"
            )));
        }
    })
}

fn cx_has_pin(cx: &Cx<'_>, card: &Card, io: &Io) -> bool {
    cx.pins.contains_key(&(card.uuid.clone(), io.id.clone()))
}

/// Okta Workflows' "is empty": nothing, empty text, an empty list or an empty object.
pub(crate) fn is_empty(value: &str) -> String {
    format!(
        "({value} is none or (({value} is string or {value} is sequence or {value} is mapping) and {value} | length == 0))"
    )
}

/// An operand as an expression; typed numbers and booleans keep their type.
fn operand(cx: &mut Cx<'_>, card: &Card, io: &Io, steps: &mut Vec<Step>) -> String {
    let val = cx.val(card, io);
    match (&val, &io.ty) {
        (Val::Lit(Value::String(text)), IoType::Number) if text.trim().parse::<f64>().is_ok() => {
            text.trim().to_owned()
        }
        (Val::Lit(Value::String(text)), IoType::Boolean)
            if matches!(text.as_str(), "true" | "false") =>
        {
            text.clone()
        }
        _ => cx.expr(&val, steps),
    }
}

fn template(expression: &str) -> String {
    format!("{{{{ {expression} }}}}")
}

// ---------------------------------------------------------------------------------------------
// Flow control

/// If/Else: an `if` step, and its Join's outputs as a `flow.assign` after it.
pub(crate) fn if_else(
    cx: &mut Cx<'_>,
    body: &Body,
    card: &Card,
    then_nodes: &[Node],
    else_nodes: &[Node],
    join: Option<usize>,
    steps: &mut Vec<Step>,
) {
    let id = cx.id(card);
    let condition = match condition(cx, card, None, steps) {
        Ok(condition) => condition,
        Err(gap) => {
            cx.approx(
                card,
                format!("{}; the condition is always false", gap.reason),
            );
            "false".into()
        }
    };
    cx.set_outs(card, |_| Out::new(format!("(steps.{id}.branch == 'then')")));
    let mut then = cx.nodes(body, then_nodes);
    let otherwise = cx.nodes(body, else_nodes);
    if then.is_empty() {
        then.push(Step::placeholder(
            "Nothing to do when the condition is true",
        ));
    }
    steps.push(Step::of(
        Some(id.clone()),
        StepKind::If {
            condition: template(&condition),
            then,
            otherwise,
        },
    ));
    let Some(join_card) = join.and_then(|j| body.cards.get(j)) else {
        return;
    };
    if join_card.outputs.is_empty() {
        return;
    }
    let then_cards = cards_in(body, then_nodes);
    let else_cards = cards_in(body, else_nodes);
    let join_id = cx.id(join_card);
    let mut fields = Vec::new();
    let mut shapes = Vec::new();
    for (position, output) in join_card.outputs.iter().enumerate() {
        let input = join_card
            .joins
            .iter()
            .find(|(_, out)| *out == output.id)
            .and_then(|(input, _)| join_card.inputs.iter().find(|io| io.id == *input))
            .or_else(|| join_card.inputs.iter().find(|io| io.key == output.key))
            .or_else(|| join_card.inputs.get(position));
        let sources = match input {
            Some(io) => cx.sources(join_card, io),
            None => Vec::new(),
        };
        let pick = |set: &HashSet<String>| {
            sources
                .iter()
                .find(|(source, _)| set.contains(source))
                .map(|(_, out)| out.clone())
        };
        let outside = sources
            .iter()
            .find(|(source, _)| !then_cards.contains(source) && !else_cards.contains(source))
            .map(|(_, out)| out.clone());
        let then_value = pick(&then_cards).or_else(|| outside.clone());
        let else_value = pick(&else_cards).or(outside);
        let shape = then_value
            .as_ref()
            .or(else_value.as_ref())
            .map(|o| o.shape.clone())
            .unwrap_or_default();
        let read = |out: Option<Out>| out.map_or_else(|| "none".to_owned(), |o| o.read());
        let value = format!(
            "({} if steps.{id}.branch == 'then' else {})",
            read(then_value),
            read(else_value)
        );
        fields.push((output.key.clone(), Tv::expr(&value)));
        shapes.push(shape);
    }
    steps.push(
        Step::card(Some(join_id.clone()), "flow.assign", fields).with_comment(format!(
            "{}: the value from the branch that ran",
            join_card.name
        )),
    );
    for (output, shape) in join_card.outputs.iter().zip(shapes) {
        let mut out = Out::step(&join_id).shaped(shape);
        out.path.push(Seg::Key(output.key.clone()));
        cx.set_out(join_card, output, out);
    }
}

/// The uuids of every card inside some nodes.
fn cards_in(body: &Body, nodes: &[Node]) -> HashSet<String> {
    let mut set = HashSet::new();
    for node in nodes {
        match node {
            Node::Card(i) => {
                if let Some(card) = body.cards.get(*i) {
                    set.insert(card.uuid.clone());
                }
            }
            Node::If {
                card,
                then,
                otherwise,
                join,
            } => {
                for i in [Some(*card), *join].into_iter().flatten() {
                    if let Some(card) = body.cards.get(i) {
                        set.insert(card.uuid.clone());
                    }
                }
                set.extend(cards_in(body, then));
                set.extend(cards_in(body, otherwise));
            }
        }
    }
    set
}

/// If/ElseIf: nested `if` steps over the inline branches; the outputs come from the Return of the
/// branch that ran.
pub(crate) fn if_else_if(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let id = cx.id(card);
    let mut groups: Vec<(String, i64)> = Vec::new();
    for io in &card.inputs {
        if let Some(group) = &io.group
            && group != "context"
            && group != "else"
            && io.key == "operator"
            && !groups.iter().any(|(g, _)| g == group)
        {
            groups.push((
                group.clone(),
                if group == "if" { i64::MIN } else { io.index },
            ));
        }
    }
    groups.sort_by_key(|(_, index)| *index);
    let context = cx.context_of(card);
    let mut clauses = Vec::new();
    let mut return_ids = Vec::new();
    for (n, (group, _)) in groups.iter().enumerate() {
        let condition = condition(cx, card, Some(group), steps)?;
        let body = card
            .inputs
            .iter()
            .find(|io| io.group.as_deref() == Some(group.as_str()) && io.subflow.is_some())
            .and_then(|io| io.subflow.clone());
        let return_id = cx.fresh(&format!("{id}_{n}"));
        let branch = match body {
            Some(body) => cx.inline_body(&body, context.clone(), None, &return_id),
            None => vec![Step::placeholder("This branch has no cards")],
        };
        return_ids.push(return_id);
        clauses.push((condition, branch));
    }
    let else_body = card
        .inputs
        .iter()
        .find(|io| io.group.as_deref() == Some("else") && io.subflow.is_some())
        .and_then(|io| io.subflow.clone());
    let mut otherwise = match else_body {
        Some(body) => {
            let return_id = cx.fresh(&format!("{id}_else"));
            let steps = cx.inline_body(&body, context.clone(), None, &return_id);
            return_ids.push(return_id);
            steps
        }
        None => Vec::new(),
    };
    for (condition, branch) in clauses.into_iter().rev() {
        let step = Step::of(
            None,
            StepKind::If {
                condition: template(&condition),
                then: branch,
                otherwise,
            },
        );
        otherwise = vec![step];
    }
    steps.extend(otherwise);
    branch_outputs(cx, card, &id, &return_ids, steps);
    Ok(())
}

/// The outputs of a card whose inline branches each end in a Return: a `flow.assign` that takes
/// each key from the first branch that ran (the one whose return step exists).
fn branch_outputs(
    cx: &mut Cx<'_>,
    card: &Card,
    id: &str,
    return_ids: &[String],
    steps: &mut Vec<Step>,
) {
    if card.outputs.is_empty() {
        return;
    }
    let mut fields = Vec::new();
    for output in &card.outputs {
        let key = Out::new("x").project(&output.key).strict();
        let key = key.trim_start_matches('x');
        let mut value = "none".to_owned();
        for return_id in return_ids.iter().rev() {
            value = format!(
                "(steps.{return_id}{key} | default(none) if steps.{return_id} is defined else {value})"
            );
        }
        fields.push((output.key.clone(), Tv::expr(&value)));
    }
    steps.push(Step::card(Some(id.to_owned()), "flow.assign", fields));
    cx.outs_by_key(card, id);
}

/// If Error: `try` over the guarded inline flow, `catch` over the handler.
pub(crate) fn if_error(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let id = cx.id(card);
    let context = cx.context_of(card);
    let Some(guarded) = card
        .inputs
        .iter()
        .find(|io| io.subflow.is_some())
        .and_then(|io| io.subflow.clone())
    else {
        return Err(Gap::new("the If Error card holds no flow to run"));
    };
    let try_id = cx.fresh(&format!("{id}_try"));
    let catch_id = cx.fresh(&format!("{id}_catch"));
    let try_steps = cx.inline_body(&guarded, context.clone(), None, &try_id);
    let catch_steps = match card.policy.handler.clone() {
        Some(handler) => cx.inline_body(&handler, context, None, &catch_id),
        None => vec![Step::placeholder("Okta Workflows ignores the error here")],
    };
    steps.push(Step::of(
        None,
        StepKind::Try {
            steps: try_steps,
            catch: catch_steps,
        },
    ));
    branch_outputs(cx, card, &id, &[catch_id, try_id], steps);
    Ok(())
}

/// Continue If: `continue_if`.
pub(crate) fn continue_if(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let condition = condition(cx, card, None, steps)?;
    let id = cx.id(card);
    steps.push(Step::of(
        Some(id),
        StepKind::ContinueIf(template(&condition)),
    ));
    cx.set_outs(card, |_| Out::constant("none"));
    Ok(())
}

/// Return Error If: an `if` that ends the run with `flow.fail`.
pub(crate) fn return_error_if(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let condition = condition(cx, card, None, steps)?;
    let id = cx.id(card);
    let message = cx.val_key(card, "message");
    let message = match message {
        Val::Lit(Value::Null) => Tv::text("Return Error If"),
        other => cx.tv(&other, steps),
    };
    let status = cx.val_key(card, "statusCode");
    let code = match &status {
        Val::Lit(Value::Number(n)) => Tv::text(&format!("status_{n}")),
        _ => Tv::text("flow_failed"),
    };
    steps.push(Step::of(
        Some(id),
        StepKind::If {
            condition: template(&condition),
            then: vec![Step::card(
                None,
                "flow.fail",
                vec![("message".into(), message), ("code".into(), code)],
            )],
            otherwise: Vec::new(),
        },
    ));
    if cx.trigger_kind == "api" {
        cx.approx(
            card,
            "an API endpoint answers 500 with the message, not the card's status code",
        );
    }
    Ok(())
}

/// Assign: a `flow.assign` with the card's fields.
pub(crate) fn assign(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let id = cx.id(card);
    let mut fields = Vec::new();
    let mut outs = HashMap::new();
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        let (text, out) = cx.raw(&val);
        let value = match &val {
            Val::Lit(value) => Tv::json(value),
            Val::Out(_) => Tv::expr(&text),
        };
        fields.push((io.key.clone(), value));
        outs.insert(io.key.clone(), out);
    }
    steps.push(Step::card(Some(id.clone()), "flow.assign", fields));
    for output in &card.outputs {
        let mut out = Out::step(&id);
        out.path.push(Seg::Key(output.key.clone()));
        if let Some(source) = outs.get(&output.key) {
            out.shape = source.shape.clone();
            out.json_text = source.json_text;
        }
        cx.set_out(card, output, out);
    }
    Ok(())
}

/// Assign If: a value chosen by a condition.
pub(crate) fn assign_if(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let condition = condition(cx, card, None, steps)?;
    let when_true = cx.val_key(card, "valueIfTrue");
    let when_false = cx.val_key(card, "valueIfFalse");
    let when_true = cx.expr(&when_true, steps);
    let when_false = cx.expr(&when_false, steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "flow.assign",
        vec![(
            "output".into(),
            Tv::expr(&format!("({when_true} if {condition} else {when_false})")),
        )],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("output"));
    Ok(())
}

/// Lookup: the value of the option whose name is the key, or the fallback.
pub(crate) fn lookup(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let key = cx.val_key(card, "key");
    let key = cx.expr(&key, steps);
    let fallback = cx.val_key(card, "else");
    let fallback = cx.expr(&fallback, steps);
    let mut options = Vec::new();
    for io in card.inputs_in("options") {
        let val = cx.val(card, io);
        let value = cx.expr(&val, steps);
        options.push(format!("{}: {value}", string_literal(&io.key)));
    }
    let table = format!("{{{}}}", options.join(", "));
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "flow.assign",
        vec![(
            "result".into(),
            Tv::expr(&format!(
                "({table}[{key}] if {key} in {table} else {fallback})"
            )),
        )],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("result"));
    Ok(())
}

/// Return: `flow.return` at the top of a flow; inside an inline flow, the values its card hands
/// back.
pub(crate) fn return_card(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut fields = Vec::new();
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        let value = cx.tv(&val, steps);
        fields.push((io.key.clone(), value));
    }
    match cx.inline_return_id() {
        Some(id) => steps.push(Step::card(Some(id), "flow.assign", fields)),
        None => steps.push(Step::card(
            None,
            "flow.return",
            vec![("body".into(), Tv::Map(fields))],
        )),
    }
    Ok(())
}

/// Return Raw: an API endpoint's response.
pub(crate) fn return_raw(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut fields = Vec::new();
    for (key, field) in [
        ("statusCode", "status"),
        ("headers", "headers"),
        ("body", "body"),
    ] {
        let Some(io) = card.input(None, key) else {
            continue;
        };
        // A body Okta Workflows turns into JSON text goes out as the object: idflow sends it as
        // JSON with its content type.
        let val = if key == "body" {
            cx.val_unconverted(card, io)
        } else {
            cx.val(card, io)
        };
        if val.is_unset() {
            continue;
        }
        let value = cx.tv(&val, steps);
        fields.push((field.to_owned(), value));
    }
    steps.push(Step::card(None, "flow.return", fields));
    Ok(())
}

/// Call Flow: `flow.call`, with the helper's Return values as outputs.
pub(crate) fn call_flow(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let Some(helper) = cx.helper(card, "flo") else {
        return Err(Gap::new("the flow it calls is not in the export"));
    };
    let with = cx.helper_with(card, helper, &["flo"], steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "flow.call",
        vec![
            ("flow".into(), Tv::Str(helper.name.clone())),
            ("with".into(), Tv::Map(with)),
        ],
    ));
    cx.set_outs(card, |io| Out::step(&id).project(&io.key));
    Ok(())
}

/// For Each (and For Each - Ignore Errors): `for_each` over a helper flow or an inline flow.
pub(crate) fn for_each(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let ignore_errors = card.address.action == "asyncEach";
    let list = cx.val_key(card, "list");
    let (items, list_out) = cx.raw(&list);
    let concurrency = concurrency(cx, card);
    let id = cx.id(card);
    let item = Out::new("item").shaped(list_out.shape.item());
    if let Some(inline) = card.inputs.iter().find_map(|io| io.subflow.clone()) {
        let context = cx.context_of(card);
        let saved = cx.item.replace(item.clone());
        let return_id = cx.fresh(&format!("{id}_result"));
        let mut body = cx.inline_body(&inline, context, Some(item), &return_id);
        cx.item = saved;
        if ignore_errors {
            body = vec![Step::of(
                None,
                StepKind::Try {
                    steps: body,
                    catch: vec![Step::placeholder(
                        "For Each - Ignore Errors: an item that fails does not stop the others",
                    )],
                },
            )];
        }
        steps.push(Step::of(
            Some(id),
            StepKind::Loop {
                collect: false,
                items: template(&items),
                var: "item".into(),
                concurrency,
                body: crate::flow::LoopBody::Steps(body),
            },
        ));
        return Ok(());
    }
    let Some(helper) = cx.helper(card, "flo") else {
        return Err(Gap::new("the helper flow it calls is not in the export"));
    };
    let saved = cx.item.replace(item);
    let with = cx.helper_with(card, helper, &["list", "flo", "concurrency"], steps);
    cx.item = saved;
    steps.push(Step::of(
        Some(id),
        StepKind::Loop {
            collect: false,
            items: template(&items),
            var: "item".into(),
            concurrency,
            body: loop_over_helper(helper.name.clone(), with, ignore_errors),
        },
    ));
    Ok(())
}

fn concurrency(cx: &mut Cx<'_>, card: &Card) -> Option<u32> {
    let value = cx.val_key(card, "concurrency");
    match value {
        Val::Lit(Value::Number(n)) => {
            let n = n.as_u64().unwrap_or(1);
            if n > 100 {
                cx.approx(card, "idflow runs at most 100 items at once");
            }
            Some(n.clamp(1, 100) as u32)
        }
        _ => None,
    }
}

/// Map: `map` over a helper flow; the new list holds each helper's returned value.
pub(crate) fn map(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let Some(helper) = cx.helper(card, "flo") else {
        return Err(Gap::new("the helper flow it calls is not in the export"));
    };
    let list = cx.val_key(card, "list");
    let (items, list_out) = cx.raw(&list);
    let concurrency = concurrency(cx, card);
    let saved = cx
        .item
        .replace(Out::new("item").shaped(list_out.shape.item()));
    let with = cx.helper_with(card, helper, &["list", "flo", "concurrency"], steps);
    cx.item = saved;
    let id = cx.id(card);
    steps.push(Step::of(
        Some(id.clone()),
        StepKind::Loop {
            collect: true,
            items: template(&items),
            var: "item".into(),
            concurrency,
            body: crate::flow::LoopBody::Flow {
                flow: helper.name.clone(),
                with,
            },
        },
    ));
    let results = match helper.returns.as_slice() {
        [only] => Out::new(format!(
            "(steps.{id} | map(attribute={}) | list)",
            string_literal(only)
        )),
        _ => Out::step(&id),
    };
    cx.set_outs(card, |_| results.clone());
    Ok(())
}

/// Filter Custom: `map` over the helper flow for a yes/no per item, then `list.filter`.
pub(crate) fn filter_custom(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let Some(helper) = cx.helper(card, "flo") else {
        return Err(Gap::new("the helper flow it calls is not in the export"));
    };
    let list = cx.val_key(card, "list");
    let (items, list_out) = cx.raw(&list);
    let concurrency = concurrency(cx, card);
    let saved = cx
        .item
        .replace(Out::new("item").shaped(list_out.shape.item()));
    let with = cx.helper_with(card, helper, &["list", "flo", "concurrency"], steps);
    cx.item = saved;
    let id = cx.id(card);
    let keep_id = cx.fresh(&format!("{id}_keep"));
    steps.push(Step::of(
        Some(keep_id.clone()),
        StepKind::Loop {
            collect: true,
            items: template(&items),
            var: "item".into(),
            concurrency,
            body: crate::flow::LoopBody::Flow {
                flow: helper.name.clone(),
                with,
            },
        },
    ));
    let verdict = match helper.returns.as_slice() {
        [only] => format!("steps.{keep_id}[index][{}]", string_literal(only)),
        _ => format!("steps.{keep_id}[index]"),
    };
    steps.push(Step::card(
        Some(id.clone()),
        "list.filter",
        vec![
            ("list".into(), Tv::expr(&items)),
            ("where".into(), Tv::text(&verdict)),
        ],
    ));
    cx.set_outs(card, |_| Out::step(&id).shaped(list_out.shape.clone()));
    Ok(())
}

/// Repeat: `for_each` over `range(count)` with the helper flow.
pub(crate) fn repeat(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let Some(helper) = cx.helper(card, "flo") else {
        return Err(Gap::new("the helper flow it calls is not in the export"));
    };
    let count = cx.val_key(card, "count");
    let count = cx.expr(&count, steps);
    let concurrency = concurrency(cx, card);
    let with = cx.helper_with(card, helper, &["count", "flo", "concurrency"], steps);
    let id = cx.id(card);
    steps.push(Step::of(
        Some(id),
        StepKind::Loop {
            collect: false,
            items: template(&format!("range({count}) | list")),
            var: "item".into(),
            concurrency,
            body: crate::flow::LoopBody::Flow {
                flow: helper.name.clone(),
                with,
            },
        },
    ));
    Ok(())
}

/// Wait until a date: `wait_until`.
pub(crate) fn wait_until(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let date = cx.val_key(card, "date");
    if date.is_unset() {
        return Err(Gap::new("the card has no date to wait for"));
    }
    let date = cx.expr(&date, steps);
    let id = cx.id(card);
    steps.push(Step::of(Some(id), StepKind::WaitUntil(template(&date))));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Text

/// Compose: `text.compose`, with the card's `{{{field}}}` placeholders as expressions.
pub(crate) fn compose(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let source = card
        .input(None, "_text_")
        .and_then(|io| io.text().map(str::to_owned))
        .unwrap_or_default();
    let mut text = String::new();
    let mut rest = source.as_str();
    while let Some(start) = rest.find("{{{") {
        let (before, after) = rest.split_at(start);
        text.push_str(&literal_text(before));
        let after = &after[3..];
        match after.find("}}}") {
            Some(end) => {
                let key = &after[..end];
                let val = cx.val_key(card, key);
                text.push_str(&cx.inline(&val, steps));
                rest = &after[end + 3..];
            }
            None => {
                text.push_str(&literal_text(&rest[start..]));
                rest = "";
            }
        }
    }
    text.push_str(&literal_text(rest));
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "text.compose",
        vec![("text".into(), Tv::Str(text))],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// Concatenate: the inputs one after the other.
pub(crate) fn concatenate(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut text = String::new();
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        text.push_str(&cx.inline(&val, steps));
    }
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "text.compose",
        vec![("text".into(), Tv::Str(text))],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// A card whose inputs map one to one onto an idflow card's fields, with one output.
fn simple(
    cx: &mut Cx<'_>,
    card: &Card,
    steps: &mut Vec<Step>,
    idflow: &str,
    fields: &[(&str, &str)],
) -> Converted {
    let mut with = Vec::new();
    for (okta, field) in fields {
        let val = cx.val_key(card, okta);
        if val.is_unset() && matches!(val, Val::Lit(Value::Null)) {
            continue;
        }
        let value = cx.tv(&val, steps);
        with.push(((*field).to_owned(), value));
    }
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), idflow, with));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

pub(crate) fn split(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "text.split",
        &[("string", "text"), ("delimiter", "separator")],
    )
}

pub(crate) fn lower(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "text.lower", &[("string", "text")])
}

pub(crate) fn upper(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "text.upper", &[("string", "text")])
}

pub(crate) fn trim(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "text.trim", &[("string", "text")])
}

pub(crate) fn text_length(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "text.length", &[("string", "text")])
}

pub(crate) fn text_contains(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "text.contains",
        &[("string", "text"), ("substr", "find")],
    )
}

pub(crate) fn replace(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "text.replace",
        &[
            ("string", "text"),
            ("search", "find"),
            ("replace", "replace"),
        ],
    )
}

/// Text Segment: a slice of the text.
pub(crate) fn segment(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let text = cx.val_key(card, "string");
    let text = cx.expr(&text, steps);
    let start = cx.val_key(card, "start");
    let start = if start.is_unset() {
        "0".into()
    } else {
        cx.expr(&start, steps)
    };
    let end = cx.val_key(card, "end");
    let slice = if end.is_unset() {
        format!("(({text} or '') | string)[{start}:]")
    } else {
        let end = cx.expr(&end, steps);
        format!("(({text} or '') | string)[{start}:{end}]")
    };
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "flow.assign",
        vec![("output".into(), Tv::expr(&slice))],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("output"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lists

/// A `flow.assign` of one computed value per output, and outputs read from it.
fn assign_outputs(
    cx: &mut Cx<'_>,
    card: &Card,
    steps: &mut Vec<Step>,
    values: Vec<(String, String, Shape)>,
) {
    let id = cx.id(card);
    let fields = values
        .iter()
        .map(|(key, value, _)| (key.clone(), Tv::expr(value)))
        .collect();
    steps.push(Step::card(Some(id.clone()), "flow.assign", fields));
    for (key, _, shape) in values {
        if let Some(output) = card.output(None, &key) {
            let mut out = Out::step(&id).shaped(shape);
            out.path.push(Seg::Key(key.clone()));
            cx.set_out(card, output, out);
        }
    }
}

/// At: the item at an index.
pub(crate) fn at(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let list = cx.val_key(card, "list");
    let (list, out) = cx.raw(&list);
    let index = cx.val_key(card, "index");
    let index = cx.expr(&index, steps);
    assign_outputs(
        cx,
        card,
        steps,
        vec![(
            "item".into(),
            format!("({list}[{index}] | default(none))"),
            out.shape.item(),
        )],
    );
    Ok(())
}

/// Get First Item / Get Last Item: the item and the rest of the list.
pub(crate) fn first_or_last(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let list = cx.val_key(card, "list");
    let (list, out) = cx.raw(&list);
    let (item, rest) = if card.address.action == "shift" {
        (
            format!("({list}[0] if {list} else none)"),
            format!("({list} or [])[1:]"),
        )
    } else {
        (
            format!("({list}[-1] if {list} else none)"),
            format!("({list} or [])[:-1]"),
        )
    };
    assign_outputs(
        cx,
        card,
        steps,
        vec![
            ("item".into(), item, out.shape.item()),
            ("list".into(), rest, out.shape.clone()),
        ],
    );
    Ok(())
}

/// Add to End.
pub(crate) fn push(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let list = cx.val_key(card, "list");
    let list = cx.expr(&list, steps);
    let item = cx.val_key(card, "item");
    let item = cx.expr(&item, steps);
    assign_outputs(
        cx,
        card,
        steps,
        vec![(
            "list".into(),
            format!("(({list} or []) + [{item}])"),
            Shape::Plain,
        )],
    );
    Ok(())
}

/// Construct (list): the inputs as a list.
pub(crate) fn list_construct(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut items = Vec::new();
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        items.push(cx.tv(&val, steps));
    }
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "flow.assign",
        vec![("list".into(), Tv::List(items))],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("list"));
    Ok(())
}

/// Union, Intersection, Difference.
pub(crate) fn set_operation(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let first = cx.val_key(card, "list1");
    let first = cx.expr(&first, steps);
    let second = cx.val_key(card, "list2");
    let second = cx.expr(&second, steps);
    let (key, value) = match card.address.action.as_str() {
        "union" => (
            "union",
            format!("((({first} or []) + ({second} or [])) | unique | list)"),
        ),
        "intersection" => (
            "list",
            format!("(({first} or []) | select('in', {second} or []) | list)"),
        ),
        _ => (
            "list",
            format!("(({first} or []) | reject('in', {second} or []) | list)"),
        ),
    };
    let output = card
        .outputs
        .first()
        .map_or_else(|| key.to_owned(), |io| io.key.clone());
    assign_outputs(cx, card, steps, vec![(output, value, Shape::Plain)]);
    Ok(())
}

pub(crate) fn length(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    // The count does not depend on field names: the list is used as it is.
    let list = cx.val_key(card, "list");
    let (list, _) = cx.raw(&list);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "list.length",
        vec![("list".into(), Tv::expr(&list))],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

pub(crate) fn includes(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "list.contains",
        &[("list", "list"), ("value", "value")],
    )
}

pub(crate) fn list_join(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "text.join",
        &[("list", "list"), ("delimiter", "separator")],
    )
}

/// A path inside the items of a list, as an expression over `item` with the items' field names.
fn item_path(list: &Out, path: &str) -> Out {
    Out::new("item")
        .shaped(list.shape.item())
        .project_path(path)
}

/// Pluck: each item's value at a path.
pub(crate) fn pluck(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let list = cx.val_key(card, "list");
    let (list_text, list_out) = cx.raw(&list);
    let key = cx.val_key(card, "key");
    let Some(key) = key.text().map(str::to_owned) else {
        return Err(Gap::new("the path to pluck is not a literal text"));
    };
    let value = item_path(&list_out, &key);
    let expression = match value.whole() {
        expr::Whole::Expr(text) => text,
        expr::Whole::NeedsList { list, .. } => list,
    };
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "list.map",
        vec![
            ("list".into(), Tv::expr(&list_text)),
            ("expression".into(), Tv::text(&expression)),
        ],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// Filter and Find: `list.filter` / `list.find` with the comparison per item.
pub(crate) fn filter_or_find(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let list = cx.val_key(card, "list");
    let (list_text, list_out) = cx.raw(&list);
    let path = cx.val_key(card, "path");
    let path = match &path {
        Val::Lit(Value::String(text)) => text.clone(),
        Val::Lit(Value::Null) => String::new(),
        _ => return Err(Gap::new("the path to compare is not a literal text")),
    };
    let left = item_path(&list_out, &path).read();
    let operator = cx
        .val_key(card, "operator")
        .text()
        .unwrap_or("==")
        .to_owned();
    let comparison = cx.val_key(card, "comparison");
    let right = cx.expr(&comparison, steps);
    let test = match operator.as_str() {
        "==" | "=" => format!("{left} == {right}"),
        "!=" => format!("{left} != {right}"),
        ">" | ">=" | "<" | "<=" => format!("{left} {operator} {right}"),
        "in" => format!("{left} in ({right} or [])"),
        "contains" => format!("{right} in ({left} or '')"),
        "is empty" => is_empty(&left),
        "is not empty" => format!("not {}", is_empty(&left)),
        other => {
            return Err(Gap::new(format!(
                "comparison operator `{other}` has no idflow equivalent"
            )));
        }
    };
    let id = cx.id(card);
    let find = card.address.action == "findBy";
    steps.push(Step::card(
        Some(id.clone()),
        if find { "list.find" } else { "list.filter" },
        vec![
            ("list".into(), Tv::expr(&list_text)),
            ("where".into(), Tv::text(&test)),
        ],
    ));
    let item_shape = list_out.shape.item();
    let list_shape = list_out.shape.clone();
    cx.set_outs(card, |io| match (find, io.key.as_str()) {
        (true, "index") => {
            Out::missing("the found item's position is not available; it reads as empty")
        }
        (true, _) => Out::step(&id).shaped(item_shape.clone()),
        (false, _) => Out::step(&id).shaped(list_shape.clone()),
    });
    Ok(())
}

/// Sort: `list.sort` by a path.
pub(crate) fn sort(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let list = cx.val_key(card, "list");
    let (list_text, list_out) = cx.raw(&list);
    let path = cx.val_key(card, "path");
    let mut with = vec![("list".into(), Tv::expr(&list_text))];
    if let Some(path) = path.text().filter(|p| !p.is_empty()) {
        let target = item_path(&list_out, path);
        let dotted = dotted_path(&target.path);
        with.push(("key".into(), Tv::text(&dotted)));
    }
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "list.sort", with));
    let shape = list_out.shape.clone();
    cx.set_outs(card, |_| Out::step(&id).shaped(shape.clone()));
    Ok(())
}

/// A path as idflow's `object.get` and `list.sort` read it (`profile.emails[0].value`).
pub(crate) fn dotted_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) if expr::is_identifier(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Seg::Key(key) => out.push_str(&format!("[\"{}\"]", key.replace('"', "\\\""))),
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Objects

/// Construct (object): the fields as an object; dotted keys (`a.b`, `list.0.c`) nest.
pub(crate) fn object_construct(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut root = Tv::Map(Vec::new());
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        let value = cx.tv(&val, steps);
        insert_path(&mut root, &expr::path(&io.key), value);
    }
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "flow.assign",
        vec![("output".into(), root)],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("output"));
    Ok(())
}

/// Puts `value` at `path` inside `root`, creating objects (and lists for numeric segments).
fn insert_path(root: &mut Tv, path: &[Seg], value: Tv) {
    let Some((first, rest)) = path.split_first() else {
        *root = value;
        return;
    };
    match (first, root) {
        (Seg::Key(key), Tv::Map(entries)) => {
            let slot = match entries.iter().position(|(k, _)| k == key) {
                Some(i) => &mut entries[i].1,
                None => {
                    entries.push((key.clone(), empty_for(rest)));
                    let last = entries.len() - 1;
                    &mut entries[last].1
                }
            };
            insert_path(slot, rest, value);
        }
        (Seg::Index(index), Tv::List(items)) if *index >= 0 && *index < 1000 => {
            let index = *index as usize;
            while items.len() <= index {
                items.push(empty_for(rest));
            }
            insert_path(&mut items[index], rest, value);
        }
        (seg, root) => {
            // A path that disagrees with what is already there: the last writer wins, as a key.
            let key = match seg {
                Seg::Key(key) => key.clone(),
                Seg::Index(index) => index.to_string(),
            };
            let mut map = Tv::Map(vec![(key.clone(), empty_for(rest))]);
            if let Tv::Map(entries) = &mut map
                && let Some((_, slot)) = entries.first_mut()
            {
                insert_path(slot, rest, value);
            }
            *root = map;
        }
    }
}

/// Puts `value` at a dotted path (`customer.first_name`) inside `root`.
pub(crate) fn insert_json_path(root: &mut Tv, dotted: &str, value: Tv) {
    insert_path(root, &expr::path(dotted), value);
}

fn empty_for(rest: &[Seg]) -> Tv {
    match rest.first() {
        Some(Seg::Index(_)) => Tv::List(Vec::new()),
        Some(Seg::Key(_)) => Tv::Map(Vec::new()),
        None => Tv::Null,
    }
}

/// Get: the value at a path.
pub(crate) fn object_get(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let object = cx.val_key(card, "object");
    let (_, object_out) = cx.raw(&object);
    let path = cx.val_key(card, "path");
    let Some(path) = path.text().map(str::to_owned) else {
        return Err(Gap::new("the path is not a literal text"));
    };
    let value = object_out.project_path(&path);
    let shape = value.shape.clone();
    assign_outputs(
        cx,
        card,
        steps,
        vec![("output".into(), value.read(), shape)],
    );
    Ok(())
}

/// Get Multiple: one field per output, each a path inside the object.
pub(crate) fn get_multiple(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let object = cx.val_key(card, "object");
    let (_, object_out) = cx.raw(&object);
    let mut values = Vec::new();
    let mut approximate = false;
    for output in &card.outputs {
        let value = object_out.project_path(&output.key);
        approximate |= value.approximate;
        values.push((output.key.clone(), value.read(), value.shape.clone()));
    }
    if approximate {
        cx.approx(card, "some fields have no exact idflow equivalent");
    }
    assign_outputs(cx, card, steps, values);
    Ok(())
}

/// Merge: `object.merge`.
pub(crate) fn merge(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut objects = Vec::new();
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        if val.is_unset() {
            continue;
        }
        objects.push(cx.tv(&val, steps));
    }
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "object.merge",
        vec![("objects".into(), Tv::List(objects))],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// JSON, numbers, booleans

pub(crate) fn json_parse(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "json.parse", &[("string", "text")])
}

pub(crate) fn json_stringify(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "json.stringify", &[("object", "value")])
}

pub(crate) fn round(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(cx, card, steps, "number.round", &[("a", "value")])
}

/// Add, Subtract, Multiply, Divide.
pub(crate) fn arithmetic(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let idflow = match card.address.action.as_str() {
        "add" => "number.add",
        "subtract" => "number.subtract",
        "multiply" => "number.multiply",
        _ => "number.divide",
    };
    simple(cx, card, steps, idflow, &[("a", "a"), ("b", "b")])
}

/// And, Or.
pub(crate) fn and_or(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut values = Vec::new();
    for io in card.plain_inputs() {
        let val = cx.val(card, io);
        values.push(cx.tv(&val, steps));
    }
    let idflow = if card.address.action == "or" {
        "boolean.or"
    } else {
        "boolean.and"
    };
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        idflow,
        vec![("values".into(), Tv::List(values))],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Dates

/// Now: `date.now`; the other outputs are parts of it.
pub(crate) fn now(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "date.now", Vec::new()));
    let step = format!("steps.{id}");
    let mut approximate = false;
    cx.set_outs(card, |io| {
        let part = |format: &str, number: bool| {
            let text = format!("({step} | date('{format}'))");
            if number {
                Out::new(format!("({text} | int)"))
            } else {
                Out::new(text)
            }
        };
        match io.key.as_str() {
            "date" | "iso" => Out::step(&id),
            "year" => part("%Y", true),
            "day" => part("%d", true),
            "hour" => part("%H", true),
            "minute" => part("%M", true),
            "second" => part("%S", true),
            "millisecond" => part("%3f", true),
            "month" => {
                approximate = true;
                part("%m", false)
            }
            "time" => {
                approximate = true;
                part("%H:%M:%S", false)
            }
            _ => {
                approximate = true;
                part("%a, %d %b %Y %H:%M:%S UTC", false)
            }
        }
    });
    let used_approximation = card.pins.iter().any(|pin| {
        card.outputs
            .iter()
            .any(|o| o.id == pin.output && matches!(o.key.as_str(), "month" | "time" | "full"))
    });
    if approximate && used_approximation {
        cx.approx(
            card,
            "`month`, `time` and `full` are formatted by idflow, not as Okta Workflows writes them",
        );
    }
    Ok(())
}

/// Add / Subtract (dates): `date.add` with the unit's field.
pub(crate) fn date_add(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let start = cx.val_key(card, "start");
    let start = cx.tv(&start, steps);
    let scale = cx.val_key(card, "scale");
    let unit = cx
        .val_key(card, "unit")
        .text()
        .unwrap_or("days")
        .to_ascii_lowercase();
    let negative = card.address.action == "subtract";
    let (field, factor) = match unit.trim_end_matches('s') {
        "millisecond" => ("seconds", 0.001),
        "second" => ("seconds", 1.0),
        "minute" => ("minutes", 1.0),
        "hour" => ("hours", 1.0),
        "day" => ("days", 1.0),
        "week" => ("days", 7.0),
        "month" => ("months", 1.0),
        "year" => ("months", 12.0),
        other => {
            return Err(Gap::new(format!(
                "date unit `{other}` has no idflow equivalent"
            )));
        }
    };
    let sign = if negative { -1.0 } else { 1.0 };
    let amount = match &scale {
        Val::Lit(Value::Number(n)) => {
            let value = n.as_f64().unwrap_or(0.0) * factor * sign;
            if matches!(field, "days" | "months") || value.fract() == 0.0 {
                Tv::int(value.round() as i64)
            } else {
                serde_json::Number::from_f64(value).map_or(Tv::int(0), Tv::Num)
            }
        }
        Val::Lit(Value::String(text)) => match text.trim().parse::<f64>() {
            Ok(value) => Tv::int((value * factor * sign).round() as i64),
            Err(_) => Tv::int(0),
        },
        other => {
            let text = cx.expr(other, steps);
            let mut text = if factor == 1.0 {
                text
            } else {
                format!("({text}) * {factor}")
            };
            if matches!(field, "days" | "months") {
                text = format!("(({text}) | int)");
            }
            if negative {
                text = format!("-({text})");
            }
            Tv::expr(&text)
        }
    };
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "date.add",
        vec![("date".into(), start), (field.into(), amount)],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// Difference: `date.diff` in milliseconds; each output divides it, with Okta Workflows' partial
/// units.
pub(crate) fn date_diff(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let start = cx.val_key(card, "start");
    let start = cx.tv(&start, steps);
    let end = cx.val_key(card, "end");
    let end = cx.tv(&end, steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "date.diff",
        vec![
            ("from".into(), start),
            ("to".into(), end),
            ("unit".into(), Tv::text("milliseconds")),
        ],
    ));
    let ms = format!("steps.{id}");
    cx.set_outs(card, |io| match io.key.as_str() {
        "milliseconds" => Out::new(ms.clone()),
        "seconds" => Out::new(format!("({ms} / 1000)")),
        "minutes" => Out::new(format!("({ms} / 60000)")),
        "hours" => Out::new(format!("({ms} / 3600000)")),
        "days" => Out::new(format!("({ms} / 86400000)")),
        "weeks" => Out::new(format!("({ms} / 604800000)")),
        "months" => {
            let mut out = Out::new(format!("({ms} / 2629746000)"));
            out.approximate = true;
            out.note = Some("months are counted as 30.44 days".into());
            out
        }
        "years" => {
            let mut out = Out::new(format!("({ms} / 31556952000)"));
            out.approximate = true;
            out.note = Some("years are counted as 365.24 days".into());
            out
        }
        _ => Out::missing("this difference has no idflow equivalent"),
    });
    Ok(())
}

/// Date to Text: `date.format` with Okta Workflows' format tokens in strftime.
pub(crate) fn date_format(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let date = cx.val_key(card, "start");
    let date = cx.tv(&date, steps);
    let mut with = vec![("date".into(), date)];
    if let Some(format) = cx.val_key(card, "format").text().filter(|f| !f.is_empty()) {
        with.push(("format".into(), Tv::text(&strftime(format))));
    }
    zone_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "date.format", with));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// Convert: a date in several notations; `custom` is `date.format` with the card's format.
pub(crate) fn date_convert(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let date = cx.val_key(card, "start");
    let date_expr = cx.expr(&date, steps);
    let mut with = vec![("date".into(), Tv::expr(&date_expr))];
    if let Some(format) = cx.val_key(card, "format").text().filter(|f| !f.is_empty()) {
        with.push(("format".into(), Tv::text(&strftime(format))));
    }
    zone_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "date.format", with));
    cx.set_outs(card, |io| match io.key.as_str() {
        "custom" => Out::step(&id),
        "unix" => Out::new(format!("({date_expr} | date('%s') | int)")),
        "epoch" => Out::new(format!("(({date_expr} | date('%s') | int) * 1000)")),
        "human" => {
            let mut out = Out::new(format!("({date_expr} | date('%c'))"));
            out.approximate = true;
            out.note = Some("the human-readable date is written by idflow's `%c` format".into());
            out
        }
        _ => Out::new(date_expr.clone()),
    });
    Ok(())
}

fn zone_field(cx: &mut Cx<'_>, card: &Card, with: &mut Vec<(String, Tv)>) {
    let zone = cx.val_key(card, "zone");
    match zone.text().filter(|z| !z.is_empty()) {
        Some(zone) => match super::timezone(zone) {
            Some(iana) => {
                if iana != zone {
                    cx.approx(card, format!("time zone `{zone}` is written as `{iana}`"));
                }
                with.push(("timezone".into(), Tv::text(&iana)));
            }
            None => cx.approx(
                card,
                format!("time zone `{zone}` is not an IANA name; UTC is used"),
            ),
        },
        None if !zone.is_unset() => {
            let value = cx.tv(&zone, &mut Vec::new());
            with.push(("timezone".into(), value));
        }
        None => {}
    }
}

/// Okta Workflows' (moment.js) date format tokens as strftime.
pub(crate) fn strftime(format: &str) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("YYYY", "%Y"),
        ("dddd", "%A"),
        ("MMMM", "%B"),
        ("SSS", "%3f"),
        ("ddd", "%a"),
        ("MMM", "%b"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("HH", "%H"),
        ("hh", "%I"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("ZZ", "%z"),
        ("Do", "%-d"),
        ("Y", "%Y"),
        ("M", "%-m"),
        ("D", "%-d"),
        ("H", "%-H"),
        ("h", "%-I"),
        ("m", "%-M"),
        ("s", "%-S"),
        ("A", "%p"),
        ("a", "%P"),
        ("Z", "%:z"),
        ("z", "%Z"),
    ];
    let mut out = String::new();
    let mut rest = format;
    'outer: while !rest.is_empty() {
        if let Some(stripped) = rest.strip_prefix('[')
            && let Some(end) = stripped.find(']')
        {
            out.push_str(&stripped[..end].replace('%', "%%"));
            rest = &stripped[end + 1..];
            continue;
        }
        for (token, replacement) in TOKENS {
            if let Some(stripped) = rest.strip_prefix(token) {
                out.push_str(replacement);
                rest = stripped;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
        }
        rest = chars.as_str();
    }
    out
}

/// Find: the first position of a text, -1 when it is not there.
pub(crate) fn index_of(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "text.index_of",
        &[("string", "text"), ("substr", "find"), ("index", "from")],
    )
}

/// Find Last: the last position of a text (at or before `right-most position`), -1 when it is
/// not there.
pub(crate) fn last_index_of(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "text.last_index_of",
        &[("string", "text"), ("substr", "find"), ("index", "from")],
    )
}

/// Random Integer: `a` <= n < `b`.
pub(crate) fn random(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    simple(
        cx,
        card,
        steps,
        "number.random",
        &[("a", "min"), ("b", "max")],
    )
}

/// Call Flow Async: `flow.start`, which goes on once the helper run is queued.
pub(crate) fn call_flow_async(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let Some(helper) = cx.helper(card, "flo") else {
        return Err(Gap::new("the flow it starts is not in the export"));
    };
    let with = cx.helper_with(card, helper, &["flo"], steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id),
        "flow.start",
        vec![
            ("flow".into(), Tv::Str(helper.name.clone())),
            ("with".into(), Tv::Map(with)),
        ],
    ));
    Ok(())
}

/// The secret a typed-in signing key becomes: the key itself never reaches the written files.
pub(crate) const JWT_KEY_SECRET: &str = "jwt-signing-key";
/// Where that secret is read from until the user says otherwise.
pub(crate) const JWT_KEY_REFERENCE: &str = "env:JWT_SIGNING_KEY";

/// Sign (JWT): `jwt.sign`. The `payload` group becomes `claims`; a key typed into the card is
/// never copied: the step reads the secret `jwt-signing-key` instead (a pinned key stays pinned).
pub(crate) fn jwt_sign(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut with = Vec::new();
    let key = cx.val_key(card, "key");
    let key = match key {
        Val::Out(_) => {
            cx.approx(
                card,
                "its key is read from another card, so it is not masked as a secret is: keep the key in a secret and give `key: \"{{ secret('…') }}\"`",
            );
            cx.tv(&key, steps)
        }
        Val::Lit(_) => Tv::Str(cx.secret(JWT_KEY_SECRET, JWT_KEY_REFERENCE)),
    };
    with.push(("key".to_owned(), key));
    for (okta, field) in [
        ("algorithm", "algorithm"),
        ("issuer", "issuer"),
        ("subject", "subject"),
        ("audience", "audience"),
        ("jwtid", "jwt_id"),
        ("noTimestamp", "no_timestamp"),
    ] {
        let val = cx.val_in(card, "options", okta);
        if val.is_unset() || matches!(val, Val::Lit(Value::Bool(false))) {
            continue;
        }
        let value = cx.tv(&val, steps);
        with.push((field.to_owned(), value));
    }
    for (okta, field) in [("expiresIn", "expires_in"), ("notBefore", "not_before")] {
        let val = cx.val_in(card, "options", okta);
        match val {
            _ if val.is_unset() => {}
            Val::Lit(Value::Number(n)) => with.push((field.to_owned(), Tv::Num(n))),
            Val::Lit(Value::String(text)) => match duration_seconds(&text) {
                Some(seconds) => with.push((field.to_owned(), Tv::Num(seconds.into()))),
                None => {
                    return Err(Gap::new(format!(
                        "`{okta}` is `{text}`, a duration idflow does not read (give seconds)"
                    )));
                }
            },
            Val::Lit(_) => {}
            Val::Out(_) => {
                let value = cx.tv(&val, steps);
                with.push((field.to_owned(), value));
            }
        }
    }
    let header = cx.val_in(card, "options", "header");
    if !header.is_unset() {
        cx.approx(
            card,
            "its custom header is not carried over; `jwt.sign` sets `alg` and, with `key_id`, `kid`",
        );
    }
    let mut claims = Vec::new();
    for io in card.inputs_in("payload") {
        let val = cx.val(card, io);
        let value = cx.tv(&val, steps);
        claims.push((io.key.clone(), value));
    }
    if !claims.is_empty() {
        with.push(("claims".to_owned(), Tv::Map(claims)));
    }
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "jwt.sign", with));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// Seconds in a duration as the `jsonwebtoken` library of Okta Workflows reads it: a number of
/// seconds, or a number and a unit (`10m`, `10 minutes`, `2 days`, `7d`, `10h`).
fn duration_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_formats_become_strftime() {
        assert_eq!(
            strftime("dddd, MMMM D, Y h:mm a z"),
            "%A, %B %-d, %Y %-I:%M %P %Z"
        );
        assert_eq!(strftime("M/D/Y"), "%-m/%-d/%Y");
        assert_eq!(
            strftime("YYYY-MM-DD[T]HH:mm:ss.SSSZ"),
            "%Y-%m-%dT%H:%M:%S.%3f%:z"
        );
        assert_eq!(strftime("100%"), "100%%");
    }

    #[test]
    fn dotted_keys_nest() {
        let mut root = Tv::Map(Vec::new());
        insert_path(
            &mut root,
            &expr::path("commands.0.type"),
            Tv::text("update"),
        );
        insert_path(
            &mut root,
            &expr::path("commands.0.value.registration"),
            Tv::text("ALLOW"),
        );
        insert_path(&mut root, &expr::path("plain"), Tv::int(1));
        assert_eq!(
            root,
            Tv::Map(vec![
                (
                    "commands".into(),
                    Tv::List(vec![Tv::Map(vec![
                        ("type".into(), Tv::text("update")),
                        (
                            "value".into(),
                            Tv::Map(vec![("registration".into(), Tv::text("ALLOW"))])
                        ),
                    ])])
                ),
                ("plain".into(), Tv::int(1)),
            ])
        );
    }

    fn eval(expression: &str, ctx: serde_json::Value) -> serde_json::Value {
        let ctx = domain::template::to_value(&ctx);
        domain::template::eval_expression(expression, &ctx)
            .unwrap_or_else(|e| panic!("{expression}: {e:?}"))
    }

    #[test]
    fn emptiness_and_set_operations_behave_like_okta_workflows() {
        use serde_json::json;
        for (value, empty) in [
            (json!(null), true),
            (json!(""), true),
            (json!([]), true),
            (json!({}), true),
            (json!(0), false),
            (json!("x"), false),
            (json!([1]), false),
            (json!(false), false),
        ] {
            assert_eq!(
                eval(&is_empty("v"), json!({ "v": value })),
                json!(empty),
                "{value}"
            );
        }
        let ctx = json!({"a": ["x", "y", "z"], "b": ["y", "w"]});
        assert_eq!(
            eval("((a or []) | reject('in', b or []) | list)", ctx.clone()),
            json!(["x", "z"])
        );
        assert_eq!(
            eval("((a or []) | select('in', b or []) | list)", ctx.clone()),
            json!(["y"])
        );
        assert_eq!(
            eval("(((a or []) + (b or [])) | unique | list)", ctx.clone()),
            json!(["x", "y", "z", "w"])
        );
        assert_eq!(
            eval("((a or []) + ['q'])", ctx.clone()),
            json!(["x", "y", "z", "q"])
        );
        assert_eq!(eval("(a[-1] if a else none)", ctx.clone()), json!("z"));
        assert_eq!(eval("(a or [])[1:]", ctx.clone()), json!(["y", "z"]));
        assert_eq!(
            eval("(('abcdef' or '') | string)[1:3]", ctx.clone()),
            json!("bc")
        );
        assert_eq!(
            eval(
                "('try' in ('Try not. Do or do not. There is no try.' or ''))",
                ctx.clone()
            ),
            json!(true)
        );
        assert_eq!(
            eval(
                "({'LI': 'List All'}['LI'] if 'LI' in {'LI': 'List All'} else none)",
                ctx.clone()
            ),
            json!("List All")
        );
        assert_eq!(eval("(a[7] | default(none))", ctx), json!(null));
    }
}
