//! The importer never panics, whatever it is fed: arbitrary JSON, and exports with random damage
//! (keys dropped, values of the wrong type, pins to cards that do not exist, cycles). Whenever it
//! imports something, every file it would write is one idflow accepts.
//!
//! The inputs come from a small seeded generator, so a failure names the seed that reproduces it.

mod fixture;

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Map, Value, json};

/// xorshift64: deterministic, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const WORDS: &[&str] = &[
    "",
    "flopack",
    "data",
    "flos",
    "methods",
    "orderings",
    "pins",
    "address",
    "uuid",
    "node",
    "model",
    "inputs",
    "outputs",
    "value",
    "type",
    "key",
    "group",
    "flo",
    "branches",
    "joins",
    "root:kernel:control:0.0.1:if",
    "root:kernel:control:0.0.1:callable",
    "root:channels:http:okta:1.0.448:readUser",
    "root:kernel:object:0.0.1:expand",
    "{{{x}}}",
    "{{ steps }}",
    "{%",
    "a.b.0.c",
    "Row ID",
    "ID",
    "\u{0}",
    "é✓",
    "-1",
    "1e309",
    "stash",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 5 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64 % 1000),
        3 => json!(1.5),
        4 => json!(WORDS[rng.below(WORDS.len())]),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(
                    WORDS[rng.below(WORDS.len())].to_owned(),
                    random_value(rng, depth + 1),
                );
            }
            Value::Object(map)
        }
    }
}

/// Damages one random place of a document.
fn mutate(rng: &mut Rng, value: &mut Value, depth: usize) {
    let descend = depth < 40 && rng.chance(85);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.below(keys.len())].clone();
            if descend {
                if let Some(child) = map.get_mut(&key) {
                    mutate(rng, child, depth + 1);
                }
                return;
            }
            match rng.below(4) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(key, random_value(rng, 0));
                }
                2 => {
                    let copy = map.get(&key).cloned().unwrap_or(Value::Null);
                    map.insert(format!("{key}-copy"), copy);
                }
                _ => {
                    map.insert(
                        WORDS[rng.below(WORDS.len())].to_owned(),
                        random_value(rng, 0),
                    );
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let index = rng.below(items.len());
            if descend {
                mutate(rng, &mut items[index], depth + 1);
                return;
            }
            match rng.below(3) {
                0 => {
                    items.remove(index);
                }
                1 => {
                    let copy = items[index].clone();
                    items.push(copy);
                }
                _ => items[index] = random_value(rng, 0),
            }
        }
        other => *other = random_value(rng, 0),
    }
}

/// Imports `text`; panics (naming the seed) when the importer panics or writes a file idflow
/// refuses.
fn check(text: &str, seed: u64) -> bool {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        flopack::import_texts(&[("fuzz.flopack".into(), text.to_owned())])
    }));
    let import = match outcome {
        Ok(Ok(import)) => import,
        Ok(Err(_)) => return false,
        Err(_) => panic!("the importer panicked (seed {seed}) on:\n{text}"),
    };
    let mut project = std::collections::BTreeMap::new();
    for (path, content) in import.files() {
        if path.ends_with(".yaml") && !path.starts_with("tables/") && path != "idflow.yaml" {
            if let Err(errors) = domain::flowfile::parse_flow(&path, content) {
                panic!(
                    "seed {seed}: {path} is refused: {errors:?}\n{content}\n--- input ---\n{text}"
                );
            }
        } else {
            project.insert(path, content.to_owned());
        }
    }
    if let Err(errors) = domain::flowfile::parse_project_files(&project) {
        panic!("seed {seed}: the project files are refused: {errors:?}\n{project:#?}");
    }
    // The importer checks what it writes and replaces a flow idflow would refuse; that safety
    // net must never be what keeps a file valid.
    for flow in import.report().flows {
        for gap in &flow.unconverted {
            assert!(
                !gap.reason.contains("idflow refuses"),
                "seed {seed}: the importer wrote an invalid flow: {}\n--- input ---\n{text}",
                gap.reason
            );
        }
    }
    let report = import.report().to_json();
    assert!(
        serde_json::from_str::<Value>(&report).is_ok(),
        "seed {seed}: report {report}"
    );
    true
}

#[test]
fn arbitrary_json_never_panics() {
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut value = random_value(&mut rng, 0);
        // Half of the documents look like a flopack at the top, so the generator reaches past the
        // first check.
        if rng.chance(50) {
            value = json!({ "type": "flopack", "data": { "flos": { "f": random_value(&mut rng, 0) }, "tables": random_value(&mut rng, 0), "configs": random_value(&mut rng, 0) } });
        }
        check(&value.to_string(), seed);
    }
    for text in ["", "{", "[", "\"x\"", "nul"] {
        assert!(!check(text, 0), "{text:?} is not a flopack");
    }
    let odd = r#"{"type": "flopack", "data": {"flos": {"f": {"data": {"methods": "x"}}}}}"#;
    assert!(check(odd, 0), "a flopack with odd fields still imports");
}

/// Exports built with the fixture builder: every kind of card the tests know.
fn seeds() -> Vec<Value> {
    use fixture::{chain, connector, flow, helper_start, kernel, pack};
    let body = chain(
        vec![
            helper_start("s", &[("s-a", "A"), ("s-b", "B")])
                .pin("s-a", "if", "if-left")
                .pin("s-b", "obj", "obj-x")
                .build(),
            kernel("if", "control", "if", "If/Else")
                .input("if-left", None, "left-operand", "string", json!(""))
                .input("if-op", None, "operator", "string", json!("=="))
                .input("if-right", None, "right-operand", "string", json!("x"))
                .branches("t", "f")
                .build(),
            kernel("t", "control", "noop", "Noop").build(),
            kernel("f", "control", "noop", "Noop").build(),
            kernel("obj", "object", "construct", "Construct")
                .input("obj-x", None, "a.b.0.c", "string", json!(""))
                .output("obj-out", None, "output", "object")
                .pin("obj-out", "row", "row-x")
                .build(),
            connector("row", "stash", "createRow", "Create Row")
                .input(
                    "row-table",
                    Some("parameters"),
                    "stash",
                    "string",
                    json!("t1"),
                )
                .input("row-x", Some("Fields"), "X", "string", json!(""))
                .build(),
        ],
        &["s", "if", "obj", "row"],
    );
    vec![
        pack()
            .table("t1", "T", &[("X", "str")])
            .config("c1", "okta", "Okta")
            .flow(flow("f1", "Seed One", body))
            .value(),
    ]
}

#[test]
fn damaged_exports_never_panic_and_what_is_written_validates() {
    let mut documents = seeds();
    // The dev set, when it is beside the repository, makes the richest seeds.
    let devset =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/flopack");
    for name in [
        "workflows_tutorials",
        "okta_privileged_access_secrets_utilities",
        "validate_email_domain_using_registration_inline_ho",
        "office365_create_guest_users",
    ] {
        if let Ok(text) = std::fs::read_to_string(devset.join(name).join("workflow.flopack"))
            && let Ok(value) = serde_json::from_str::<Value>(&text)
        {
            documents.push(value);
        }
    }
    let mut seed = 0u64;
    let (mut tried, mut imported) = (0, 0);
    for document in &documents {
        assert!(
            check(&document.to_string(), seed),
            "the undamaged export imports"
        );
        for _ in 0..MUTATIONS {
            seed += 1;
            let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
            let mut damaged = document.clone();
            for _ in 0..1 + rng.below(8) {
                // Mostly inside the flows (where exports differ), sometimes anywhere.
                match damaged.pointer_mut("/data/flos") {
                    Some(flows) if rng.chance(90) => mutate(&mut rng, flows, 0),
                    _ => mutate(&mut rng, &mut damaged, 0),
                }
            }
            tried += 1;
            if check(&damaged.to_string(), seed) {
                imported += 1;
            }
        }
    }
    // Damage deep inside a flow leaves a flopack: most damaged exports must still import, or the
    // test would only be exercising the refusal path.
    assert!(
        imported * 2 > tried,
        "only {imported} of {tried} damaged exports imported"
    );
}

/// Damaged copies of each seed export.
const MUTATIONS: usize = 25;
