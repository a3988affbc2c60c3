//! What a `map` over a directory writes per checkpoint.
//!
//! A run that maps 5,000 users, reading each one (one effectful step per iteration, ten at a
//! time), checkpoints after every round of answers. Each checkpoint saves the engine state plus
//! the values that went out of line since the last one (as the runner does through its blob
//! store). The bytes of one checkpoint must not grow with the iterations already ended: the
//! results of ended iterations are kept in chunks, each saved once, not listed again in every
//! state. `cargo test -p domain --test map_checkpoints -- --nocapture` prints the figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::engine::{self, CompiledFlow, Effect, Event, Progress, RunContext, RunState};
use serde_json::{Value, json};

/// The runner's threshold for values out of line.
const OUT_OF_LINE_BYTES: usize = domain::values::OUT_OF_LINE_BYTES;

const USERS: usize = 5_000;

const FLOW: &str = r#"
name: big-map
steps:
  - id: users
    map: "{{ input.users }}"
    as: user
    concurrency: 10
    steps:
      - { id: read, card: http.request, with: { url: "https://okta.example.com/api/v1/users/{{ user }}" } }
  - { card: flow.return, with: { body: { count: "{{ steps.users | length }}", last: "{{ (steps.users | last).body.id }}" } } }
"#;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

/// A user as Okta answers for it: a few hundred bytes, so each result stays inline.
fn read_user(url: &str) -> Value {
    let id = url.rsplit('/').next().unwrap_or_default();
    json!({
        "status": 200,
        "body": {
            "id": id,
            "status": "ACTIVE",
            "profile": {
                "login": format!("{id}@example.com"),
                "email": format!("{id}@example.com"),
                "firstName": "Ada",
                "lastName": "Lovelace",
                "department": "Engineering",
                "title": "Analyst",
            },
        },
    })
}

/// Bytes written by each checkpoint of the run: the state's JSON, and the new values out of line.
struct Written {
    states: Vec<usize>,
    blobs: Vec<usize>,
}

fn run_big_map() -> (Written, Progress) {
    let flow = domain::flowfile::parse_flow("big-map.yaml", FLOW).expect("the flow parses");
    let flow = CompiledFlow::new(flow, "big-map.yaml").expect("the flow compiles");
    let users: Vec<String> = (0..USERS).map(|i| format!("00u{i:017}")).collect();
    let ctx = RunContext::new(
        "01BIGMAP".into(),
        flow.flow.name.clone(),
        t0(),
        json!({ "users": users }),
        json!({}),
        BTreeMap::new(),
        flow.flow.history,
    );
    let mut state = RunState::new();
    let mut written = Written {
        states: Vec::new(),
        blobs: Vec::new(),
    };
    let mut events = vec![Event::Start];
    loop {
        let decision = engine::advance(&flow, &mut state, &ctx, std::mem::take(&mut events), t0());
        if decision.progress != Progress::Pending {
            return (written, decision.progress);
        }
        let blobs: usize = state
            .take_unsaved(OUT_OF_LINE_BYTES)
            .iter()
            .map(|blob| blob.json.len())
            .sum();
        let state_bytes = serde_json::to_vec(&state).expect("state serializes").len();
        written.states.push(state_bytes);
        written.blobs.push(blobs);
        for effect in decision.effects {
            match effect {
                Effect::Card {
                    effect,
                    card,
                    input,
                    ..
                } => {
                    assert_eq!(card, "http.request");
                    let url = input["url"].as_str().unwrap_or_default();
                    events.push(Event::CardDone {
                        effect,
                        result: Ok(read_user(url)),
                    });
                }
                other => panic!("unexpected effect {other:?}"),
            }
        }
        assert!(!events.is_empty(), "the run waits on nothing");
    }
}

#[test]
fn a_checkpoint_of_a_directory_map_does_not_grow_with_the_iterations_ended() {
    let (written, progress) = run_big_map();
    match &progress {
        Progress::Succeeded(output) => {
            assert_eq!(
                output["body"]["count"],
                json!(USERS),
                "every result is kept"
            );
            assert_eq!(
                output["body"]["last"],
                json!(format!("00u{:017}", USERS - 1)),
                "in item order"
            );
        }
        other => panic!("the run did not succeed: {other:?}"),
    }
    let states = &written.states;
    let total_states: usize = states.iter().sum();
    let total_blobs: usize = written.blobs.iter().sum();
    let largest = states.iter().copied().max().unwrap_or(0);
    let tenth = states.get(states.len() / 10).copied().unwrap_or(0);
    let last = states.last().copied().unwrap_or(0);
    println!(
        "map over {USERS} users, {} checkpoints: state bytes per checkpoint after 10% {tenth}, at the end {last}, largest {largest}, mean {}; {:.1} MB of states and {:.1} MB of values out of line written in all",
        states.len(),
        total_states / states.len().max(1),
        total_states as f64 / 1e6,
        total_blobs as f64 / 1e6,
    );
    // Results of ended iterations are saved once, in chunks: the last checkpoint carries a
    // reference per chunk and the iterations of the open chunk, not a result per item.
    assert!(
        largest < 64 * 1024,
        "a checkpoint of the map wrote {largest} bytes of state"
    );
    assert!(
        last < tenth * 2,
        "the state grew from {tenth} bytes (10% of the iterations) to {last} (all)"
    );
}
