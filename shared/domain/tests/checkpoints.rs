//! Checkpoints written by earlier releases resume with this one.
//!
//! A run may wait up to 30 days, so a checkpoint written before an upgrade is restored by the release
//! after it. `fixtures/checkpoints/v<N>/<flow>.json` holds every checkpoint of one run of
//! `fixtures/checkpoints/flows/<flow>.yaml` exactly as the release writing format version N wrote
//! it, and how that run went on from there: its step records and its outcome. The tests restore each
//! checkpoint with today's engine, finish the run against the same scripted world ([`world`]), and
//! expect the step records written after the checkpoint and the outcome to be the ones recorded.
//!
//! Runs are driven by the one effect driver every run goes through, with the in-memory doubles of
//! `domain::testkit` (the engine's own tests use the same ones): a restored run is resumed as a
//! worker resumes it, and goes on from each of its later checkpoints as it reads back.
//!
//! The fixtures of a version are written once, by the release that introduced it, and never again:
//! they are what that release left in stores. Write the current version's with
//!
//! ```text
//! cargo test -p domain --test checkpoints -- --ignored write_fixtures
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::cards::{CardCall, CardError};
use domain::engine::{self, Blob, CompiledFlow, Progress, RunContext, RunState};
use domain::run::StepRecord;
use domain::runner::driver::DriveError;
use domain::testkit::{Bench, Trace, chain};
use serde_json::{Value, json};

/// The run's secret `api`; the fixtures must never contain it.
const SECRET: &str = "s3cr3t-value";

/// One recorded run: the flow, its input, and its scenario's checkpoints and results.
struct Scenario {
    flow: &'static str,
    input: Value,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            flow: "wait",
            input: json!({ "user": "ada", "at": "2026-01-10T08:00:00Z" }),
        },
        Scenario {
            flow: "retry-secret",
            input: json!({ "id": "r-1" }),
        },
        Scenario {
            flow: "for-each",
            input: json!({ "users": ["ann", "bob", "cy", "dee", "eve"] }),
        },
        Scenario {
            flow: "map-helper",
            input: json!({ "users": ["ann", "bob", "cy"] }),
        },
        Scenario {
            flow: "stream",
            input: json!({}),
        },
        Scenario {
            flow: "try-catch",
            input: json!({}),
        },
        Scenario {
            flow: "on-error",
            input: json!({}),
        },
        Scenario {
            flow: "timeout",
            input: json!({}),
        },
        // From version 4: more iterations than a chunk of results holds.
        Scenario {
            flow: "map-chunks",
            input: json!({ "ids": (0..80).map(|i| format!("i{i}")).collect::<Vec<_>>() }),
        },
    ]
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

/// The fixtures' flows, compiled, by name.
type Flows = BTreeMap<String, Arc<CompiledFlow>>;

/// Every flow of `fixtures/checkpoints/flows`, compiled, by name.
fn flows() -> Flows {
    let dir = fixtures().join("flows");
    let mut flows = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("flows folder") {
        let path = entry.expect("entry").path();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("flow file");
        let flow = domain::flowfile::parse_flow(&file, &text)
            .unwrap_or_else(|e| panic!("{file} does not parse: {e:?}"));
        let compiled = CompiledFlow::new(flow, &file).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        flows.insert(compiled.flow.name.clone(), Arc::new(compiled));
    }
    flows
}

fn context(
    flow: &CompiledFlow,
    run_id: &str,
    started_at: DateTime<Utc>,
    input: Value,
) -> RunContext {
    RunContext::new(
        run_id.into(),
        flow.flow.name.clone(),
        started_at,
        input,
        vars(),
        secrets(),
        flow.flow.history,
    )
}

/// The vars runs and helper runs see.
fn vars() -> Value {
    json!({ "org": "acme" })
}

/// The secrets runs and helper runs see.
fn secrets() -> BTreeMap<String, String> {
    BTreeMap::from([("api".to_owned(), SECRET.to_owned())])
}

/// `Authorization` as `retry-secret` builds it from the secret.
fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("svc:{SECRET}")
        )
    )
}

/// The outside world the fixtures' runs talk to. Deterministic: the same call gets the same answer,
/// so a restored run can only differ from the recorded one through the engine.
fn world(card: &str, input: &Value, attempt: u32) -> Result<Value, CardError> {
    match card {
        "http.request" => {
            let url = input["url"].as_str().unwrap_or_default();
            let auth = input.pointer("/headers/Authorization");
            // A re-issued call must carry the real secret-derived value, not its mask.
            if auth.is_some_and(|a| a.as_str() != Some(basic_auth().as_str())) {
                return Err(CardError::Status {
                    status: 401,
                    message: "bad credentials".into(),
                    detail: None,
                    retry_after: None,
                });
            }
            if url.ends_with("/flaky") && attempt == 1 {
                return Err(CardError::Status {
                    status: 503,
                    message: "unavailable".into(),
                    detail: None,
                    retry_after: None,
                });
            }
            if url.ends_with("fail") {
                return Err(CardError::Status {
                    status: 500,
                    message: "boom".into(),
                    detail: Some(json!({ "reason": "down" })),
                    retry_after: None,
                });
            }
            Ok(json!({
                "status": 200,
                "headers": {},
                "body": {
                    "url": url,
                    "request": input.pointer("/headers/X-Request"),
                    // An echoing server: the engine must scrub this before it is kept.
                    "sent_auth": auth,
                    "received": input.get("body"),
                }
            }))
        }
        "okta.find_users" => {
            let user = |login: &str| json!({ "id": format!("00u-{login}"), "login": login });
            match input.get("__page").and_then(Value::as_str) {
                None => {
                    Ok(json!({ "records": [user("ann"), user("bob"), user("cy")], "next": "p2" }))
                }
                Some("p2") => {
                    Ok(json!({ "records": [user("dee-fail"), user("eve")], "next": "p3" }))
                }
                Some(_) => Ok(json!({ "records": [user("fay")], "next": null })),
            }
        }
        other => Err(CardError::Failed {
            code: "unexpected".into(),
            message: format!("the fixtures' world has no card `{other}`"),
            retryable: false,
        }),
    }
}

/// Values saved out of line, by hash (a run's blob store).
type Blobs = BTreeMap<String, Vec<u8>>;

/// Fixtures save values longer than this out of line, so even their small runs have some: the
/// runner's threshold is larger, but the format is the same.
const OUT_OF_LINE_BYTES: usize = 24;

/// The world of the fixtures' runs at `now`, through the effect driver: every flow of the fixtures
/// deployed (helper runs run in-process), card calls answered by [`world`] at once, and `saved`
/// the values stored out of line before the run, as a worker's blob store holds them.
fn bench(flows: &Flows, now: DateTime<Utc>, saved: &Blobs) -> Bench<'static> {
    let deployed: Vec<Arc<CompiledFlow>> = flows.values().cloned().collect();
    let saved: Vec<Blob> = saved
        .iter()
        .map(|(sha256, json)| Blob {
            sha256: sha256.clone(),
            json: json.clone(),
        })
        .collect();
    Bench::new(now, &[], |call: &CardCall| {
        Some(world(&call.card, &call.input, call.attempt))
    })
    .with_helpers(&deployed)
    .with_context(vars(), secrets())
    .with_out_of_line_bytes(OUT_OF_LINE_BYTES)
    .with_values(&saved)
}

/// The committed fixture of scenario `name` written by format `version` (`v1`, `v2`, …).
fn read_fixture(version: &str, name: &str) -> Value {
    let path = fixtures().join(version).join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

/// The states a fixture's checkpoints saved, in order, as written.
fn saved_states(fixture: &Value) -> Vec<Value> {
    fixture["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .map(|c| c["state"].clone())
        .collect()
}

/// The out-of-line values of a fixture (`"blobs"`, by hash; absent before version 3).
fn fixture_blobs(fixture: &Value) -> Blobs {
    fixture["blobs"]
        .as_object()
        .map(|blobs| {
            blobs
                .iter()
                .map(|(sha, value)| (sha.clone(), serde_json::to_vec(value).expect("json")))
                .collect()
        })
        .unwrap_or_default()
}

/// How a run ended, in the fixtures' JSON.
fn outcome_json(progress: &Progress) -> Value {
    match progress {
        Progress::Succeeded(output) => json!({ "succeeded": output }),
        Progress::Failed(error) => json!({ "failed": error }),
        Progress::Pending => json!("pending"),
    }
}

/// Writes the current format's fixtures: every checkpoint of each scenario's run and how it ended.
#[test]
#[ignore = "writes fixtures; run once when a new checkpoint format version is introduced"]
fn write_fixtures() {
    let flows = flows();
    // Only the current version's: older ones are what older releases wrote, kept as they were.
    let dir = fixtures().join(format!("v{}", engine::STATE_VERSION));
    std::fs::create_dir_all(&dir).expect("fixtures folder");
    for scenario in scenarios() {
        let flow = &flows[scenario.flow];
        let ctx = context(flow, "01FIXTURE", t0(), scenario.input.clone());
        let trace = bench(&flows, t0(), &Blobs::new()).start(flow, &ctx);
        let parse = |text: &str| -> Value { serde_json::from_str(text).expect("json") };
        let fixture = json!({
            "flow": scenario.flow,
            "input": scenario.input,
            "started_at": t0(),
            "outcome": outcome_json(&trace.progress),
            "records": trace.records,
            "checkpoints": trace
                .states
                .iter()
                .map(|saved| json!({ "now": saved.at, "state": parse(&saved.text) }))
                .collect::<Vec<_>>(),
            "blobs": trace
                .values
                .iter()
                .map(|(sha, json)| (sha.clone(), parse(json)))
                .collect::<serde_json::Map<String, Value>>(),
        });
        let text = serde_json::to_string_pretty(&fixture).expect("fixture serializes") + "\n";
        assert!(!text.contains(SECRET), "a checkpoint holds the secret");
        std::fs::write(dir.join(format!("{}.json", scenario.flow)), text).expect("write fixture");
    }
}

/// Restores every checkpoint of every fixture in `version`'s folder and finishes its run.
fn restore_all(version: &str) -> usize {
    let flows = flows();
    let dir = fixtures().join(version);
    let mut restored = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("fixture");
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
        let fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let name = fixture["flow"].as_str().expect("flow name");
        let flow = &flows[name];
        let started_at: DateTime<Utc> =
            serde_json::from_value(fixture["started_at"].clone()).expect("started_at");
        let ctx = context(flow, "01FIXTURE", started_at, fixture["input"].clone());
        let records: Vec<StepRecord> =
            serde_json::from_value(fixture["records"].clone()).expect("records");
        let checkpoints = fixture["checkpoints"].as_array().expect("checkpoints");
        assert!(!checkpoints.is_empty(), "{name}: no checkpoint");
        let blobs = fixture_blobs(&fixture);
        for (n, checkpoint) in checkpoints.iter().enumerate() {
            let now: DateTime<Utc> =
                serde_json::from_value(checkpoint["now"].clone()).expect("now");
            let saved = checkpoint["state"].clone();
            let state = RunState::decode(saved.clone())
                .unwrap_or_else(|e| panic!("{name} checkpoint {n} does not restore: {e}"));
            // Restored and written again, a state is in the current version, and says so.
            let written = serde_json::to_value(&state).expect("state serializes");
            assert_eq!(written["v"], json!(engine::STATE_VERSION));
            let seq = state.seq as usize;
            let Trace {
                progress,
                records: after,
                ..
            } = bench(&flows, now, &blobs)
                .try_resume(flow, &ctx, saved)
                .unwrap_or_else(|e| panic!("{name} checkpoint {n}: {}", chain(&e)));
            assert_eq!(
                outcome_json(&progress),
                fixture["outcome"],
                "{name} checkpoint {n}: outcome"
            );
            // A `try` with an id has had its own record since some fixtures were written: such a
            // record, absent from the original run, is left out (and the records after it
            // renumbered); everything else must match.
            let after: Vec<StepRecord> = after
                .into_iter()
                .filter(|r| r.card != "try" || records.iter().any(|o| o.step == r.step))
                .zip(seq..)
                .map(|(r, n)| StepRecord {
                    seq: u32::try_from(n).expect("few records"),
                    ..r
                })
                .collect();
            assert_eq!(
                after,
                records[seq..],
                "{name} checkpoint {n}: the steps after the checkpoint"
            );
            restored += 1;
        }
    }
    restored
}

#[test]
fn checkpoints_of_format_v1_resume_and_finish() {
    let restored = restore_all("v1");
    assert!(restored >= 20, "only {restored} checkpoints restored");
}

#[test]
fn checkpoints_of_format_v2_resume_and_finish() {
    let restored = restore_all("v2");
    assert!(restored >= 20, "only {restored} checkpoints restored");
}

#[test]
fn checkpoints_of_format_v3_resume_and_finish() {
    let restored = restore_all("v3");
    assert!(restored >= 20, "only {restored} checkpoints restored");
}

#[test]
fn checkpoints_of_format_v4_resume_and_finish() {
    let restored = restore_all("v4");
    assert!(restored >= 20, "only {restored} checkpoints restored");
}

/// Version 4 keeps a `map`'s full chunks of results as one value each: a checkpoint of the loop
/// references the chunk, not one result per iteration, and the run's output has every result in
/// item order.
#[test]
fn version_4_checkpoints_keep_full_chunks_of_map_results_as_one_value() {
    let path = fixtures().join("v4").join("map-chunks.json");
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let frames = |state: &Value| -> Vec<Value> {
        state["fibers"]
            .as_object()
            .into_iter()
            .flat_map(|fibers| fibers.values())
            .flat_map(|fiber| fiber["frames"].as_array().cloned().unwrap_or_default())
            .filter(|frame| frame["frame"] == json!("loop"))
            .collect()
    };
    let mut chunked = 0;
    for checkpoint in fixture["checkpoints"].as_array().expect("checkpoints") {
        for frame in frames(&checkpoint["state"]) {
            let open = frame["results"].as_object().map_or(0, |r| r.len());
            assert!(open < 64 + 11, "{open} open results in one checkpoint");
            if let Some(chunks) = frame["chunks"].as_object() {
                assert_eq!(chunks.len(), 1, "80 items make one full chunk");
                assert!(
                    frame["results"].as_object().is_none_or(|r| r
                        .keys()
                        .all(|slot| slot.parse::<usize>().is_ok_and(|s| s >= 64))),
                    "a result of the full chunk is also listed on its own: {frame}"
                );
                chunked += 1;
            }
        }
    }
    assert!(chunked > 0, "no checkpoint kept a full chunk");
    assert_eq!(
        fixture["outcome"]["succeeded"]["body"],
        json!({ "count": 80, "first": "https://api.example.com/items/i0", "last": "https://api.example.com/items/i79" })
    );
}

/// Version 4 only added chunks of results: every version 3 checkpoint reads as its version 4 twin
/// (the runs before version 4 never filled a chunk). `try-catch` is left out: its `try` has had a
/// record of its own since its version 3 fixture was written, so the two runs differ.
#[test]
fn version_3_checkpoints_migrate_to_their_version_4_twins() {
    for name in [
        "wait",
        "retry-secret",
        "for-each",
        "map-helper",
        "stream",
        "on-error",
        "timeout",
    ] {
        let (v3, v4) = (read_fixture("v3", name), read_fixture("v4", name));
        assert_eq!(v3["records"], v4["records"], "{name}: the same run");
        let states = |fixture: &Value| -> Vec<Value> {
            let blobs = fixture_blobs(fixture);
            let saved = saved_states(fixture);
            saved
                .into_iter()
                .map(|state| inline(state, &blobs))
                .collect()
        };
        for (old, new) in states(&v3).into_iter().zip(states(&v4)) {
            assert_eq!(old["v"], json!(3), "{name}: version 3 states say so");
            let migrated = RunState::decode(old).expect("a version 3 state decodes");
            let twin = RunState::decode(new).expect("a version 4 state decodes");
            assert_eq!(
                serde_json::to_value(&migrated).expect("state"),
                serde_json::to_value(&twin).expect("state"),
                "{name}"
            );
        }
    }
}

/// The version 3 fixtures hold values out of line, and their states name them by hash only.
#[test]
fn version_3_checkpoints_reference_large_values_instead_of_repeating_them() {
    let fixture = read_fixture("v3", "for-each");
    let blobs = fixture_blobs(&fixture);
    assert!(!blobs.is_empty(), "the fixture saved values out of line");
    let mut referenced = 0;
    for checkpoint in fixture["checkpoints"].as_array().expect("checkpoints") {
        let text = checkpoint["state"].to_string();
        for (sha, json) in &blobs {
            if text.contains(sha.as_str()) {
                referenced += 1;
                let json = String::from_utf8_lossy(json);
                assert!(
                    !text.contains(json.as_ref()),
                    "a checkpoint references {sha} and repeats it"
                );
            }
        }
    }
    assert!(referenced > 0, "no checkpoint references a saved value");
    // A state whose value is gone fails its run, naming the value.
    let state = fixture["checkpoints"]
        .as_array()
        .and_then(|c| {
            c.iter().find(|c| {
                blobs
                    .keys()
                    .any(|sha| c["state"].to_string().contains(sha.as_str()))
            })
        })
        .map(|c| c["state"].clone())
        .expect("a checkpoint with an out-of-line value");
    let flows = flows();
    let flow = &flows["for-each"];
    let ctx = context(flow, "01FIXTURE", t0(), fixture["input"].clone());
    let resumed = bench(&flows, t0(), &Blobs::new()).resume(flow, &ctx, state);
    match resumed.progress {
        Progress::Failed(error) => {
            assert_eq!(error.code, "corrupt_state");
            assert!(
                error.message.contains("could not be loaded"),
                "{}",
                error.message
            );
        }
        other => panic!("a state missing a value went on: {other:?}"),
    }
}

/// Version 3 wraps every held value (inline or out of line): every version 2 checkpoint, migrated,
/// is its version 3 twin once that twin's values are loaded.
#[test]
fn version_2_checkpoints_migrate_to_their_version_3_twins() {
    for name in [
        "wait",
        "retry-secret",
        "for-each",
        "map-helper",
        "stream",
        "try-catch",
        "on-error",
        "timeout",
    ] {
        let (v2, v3) = (read_fixture("v2", name), read_fixture("v3", name));
        assert_eq!(v2["records"], v3["records"], "{name}: the same run");
        let blobs = fixture_blobs(&v3);
        for (old, new) in saved_states(&v2).into_iter().zip(saved_states(&v3)) {
            assert_eq!(old["v"], json!(2), "{name}: version 2 states say so");
            let migrated = RunState::decode(old).expect("a version 2 state decodes");
            // The twin is read through the later versions' migrations too.
            let twin = RunState::decode(inline(new, &blobs)).expect("a version 3 state decodes");
            let (mut migrated, mut twin) = (
                serde_json::to_value(&migrated).expect("state"),
                serde_json::to_value(&twin).expect("state"),
            );
            if name == "for-each" {
                // Version 2 kept what every iteration of a `for_each` gave; version 3 keeps
                // results for `map` only, so a migrated state has some the twin never had.
                without_loop_results(&mut migrated);
                without_loop_results(&mut twin);
            }
            assert_eq!(migrated, twin, "{name}");
        }
    }
}

/// `state` without the results of its loops.
fn without_loop_results(state: &mut Value) {
    for fiber in state["fibers"]
        .as_object_mut()
        .into_iter()
        .flat_map(|f| f.values_mut())
    {
        for frame in fiber["frames"].as_array_mut().into_iter().flatten() {
            if let Some(frame) = frame.as_object_mut() {
                frame.remove("results");
            }
        }
    }
}

/// A saved state with every out-of-line value written inline, as a runner without a blob store
/// writes it.
fn inline(state: Value, blobs: &Blobs) -> Value {
    match state {
        Value::Object(map) => {
            if let Some(sha) = map
                .get("blob")
                .and_then(|b| b.get("sha256"))
                .and_then(Value::as_str)
                && map.len() == 1
            {
                let json = blobs.get(sha).expect("the referenced value is saved");
                return json!({ "inline": serde_json::from_slice::<Value>(json).expect("json") });
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, inline(v, blobs)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| inline(v, blobs)).collect()),
        other => other,
    }
}

/// Version 2 only added `"v"`: every version 1 checkpoint, migrated, is its version 2 twin.
#[test]
fn version_1_checkpoints_migrate_to_their_version_2_twins() {
    for name in [
        "wait",
        "retry-secret",
        "for-each",
        "map-helper",
        "stream",
        "try-catch",
        "on-error",
        "timeout",
    ] {
        let (v1, v2) = (read_fixture("v1", name), read_fixture("v2", name));
        assert_eq!(v1["records"], v2["records"], "{name}: the same run");
        for (old, new) in saved_states(&v1).into_iter().zip(saved_states(&v2)) {
            assert!(
                old.get("v").is_none(),
                "{name}: version 1 states have no version"
            );
            // Both migrate to the same current state.
            let migrated = RunState::decode(old).expect("a version 1 state decodes");
            let twin = RunState::decode(new).expect("a version 2 state decodes");
            assert_eq!(
                serde_json::to_value(&migrated).expect("state"),
                serde_json::to_value(&twin).expect("state"),
                "{name}"
            );
        }
    }
}

/// What the recorded runs did, in words: a change here is a change of the world or the flows, not of
/// the engine, and means the fixtures no longer test what they say.
#[test]
fn the_recorded_runs_cover_what_they_claim() {
    for version in ["v1", "v2", "v3", "v4"] {
        recorded_runs_cover_what_they_claim(version);
    }
}

fn recorded_runs_cover_what_they_claim(version: &str) {
    let read = |name: &str| read_fixture(version, name);
    let summary = |fixture: &Value| -> Vec<String> {
        fixture["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["step"].as_str().unwrap_or(""),
                    r["card"].as_str().unwrap_or(""),
                    r["status"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let wait = read("wait");
    assert_eq!(
        wait["outcome"]["succeeded"]["body"],
        json!({ "greeting": "hello ada", "napped": "2026-01-08T08:00:00+00:00", "until": "2026-01-10T08:00:00+00:00" })
    );
    let retry = read("retry-secret");
    assert_eq!(retry["records"][0]["attempts"], json!(2));
    assert_eq!(
        retry["records"][1]["output"],
        json!("sent [redacted] for r-1")
    );
    let each = read("for-each");
    assert!(summary(&each).contains(&"each[4].note text.compose succeeded".to_owned()));
    let map = read("map-helper");
    assert_eq!(
        map["outcome"]["succeeded"]["body"],
        json!({ "each": ["hi ann (0)", "hi bob (1)", "hi cy (2)"], "all": "hi everyone (-1)" })
    );
    let stream = read("stream");
    assert_eq!(
        stream["outcome"]["succeeded"]["body"],
        json!({ "count": 6, "failed": 1 })
    );
    let caught = read("try-catch");
    assert_eq!(
        caught["outcome"]["succeeded"]["body"],
        json!("caught http_status at call")
    );
    let handled = read("on-error");
    assert_eq!(
        handled["outcome"]["succeeded"]["body"],
        json!("http_status after 2026-01-05T08:10:00+00:00")
    );
    let timeout = read("timeout");
    assert_eq!(timeout["outcome"]["failed"]["code"], json!("timeout"));
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every place in `value` (objects' entries and lists' items, at any depth), as paths.
fn places(value: &Value, path: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                path.push(Seg::Key(key.clone()));
                out.push(path.clone());
                places(item, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Seg::Index(index));
                out.push(path.clone());
                places(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(value: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, seg| match (seg, v) {
        (Seg::Key(k), Value::Object(map)) => map.get(k),
        (Seg::Index(i), Value::Array(items)) => items.get(*i),
        _ => None,
    })
}

/// Replaces the value at `path` with `with`, or removes it (`None`).
fn mutate(root: &mut Value, path: &[Seg], with: Option<Value>) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let parent = parent.iter().try_fold(root, |v, seg| match (seg, v) {
        (Seg::Key(k), Value::Object(map)) => map.get_mut(k),
        (Seg::Index(i), Value::Array(items)) => items.get_mut(*i),
        _ => None,
    });
    match (parent, last, with) {
        (Some(Value::Object(map)), Seg::Key(k), None) => {
            map.shift_remove(k);
        }
        (Some(Value::Object(map)), Seg::Key(k), Some(v)) => {
            map.insert(k.clone(), v);
        }
        (Some(Value::Array(items)), Seg::Index(i), None) if *i < items.len() => {
            items.remove(*i);
        }
        (Some(Value::Array(items)), Seg::Index(i), Some(v)) if *i < items.len() => {
            items[*i] = v;
        }
        _ => {}
    }
}

/// What a place may be changed into: removed, another type, numbers off by one or out of every
/// range, and the other tags of the state's enums.
fn variants(path: &[Seg], original: &Value) -> Vec<Option<Value>> {
    let mut out = vec![
        None,
        Some(Value::Null),
        Some(json!(0)),
        Some(json!(-1)),
        Some(json!(u64::MAX)),
        Some(json!(u32::MAX)),
        Some(json!("x")),
        Some(json!([])),
        Some(json!({})),
    ];
    if let Some(n) = original.as_u64() {
        out.push(Some(json!(n.saturating_add(1))));
        out.push(Some(json!(n.saturating_add(7))));
        out.push(Some(json!(n.saturating_sub(1))));
    }
    let tag = matches!(path.last(), Some(Seg::Key(k)) if k == "frame" || k == "kind" || k == "in");
    if tag {
        for other in [
            "seq", "loop", "try", "on_error", "stream", "card", "retry", "child", "wait", "root",
            "then", "else", "body", "catch",
        ] {
            out.push(Some(json!(other)));
        }
    }
    out
}

/// A small deterministic generator, so a failing case can be replayed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Every real checkpoint of the current version's fixtures: the flow, its input, the time and the
/// state. (Older versions' differ only in what their migrations rewrite.)
fn real_checkpoints() -> Vec<(String, Value, DateTime<Utc>, Value, Blobs)> {
    let mut out = Vec::new();
    let dir = fixtures().join(format!("v{}", engine::STATE_VERSION));
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut files: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("fixture");
            let fixture: Value = serde_json::from_str(&text).expect("json");
            let name = fixture["flow"].as_str().expect("flow").to_owned();
            for checkpoint in fixture["checkpoints"].as_array().expect("checkpoints") {
                // The many checkpoints of `map-chunks` differ mostly by how many results are
                // open, which the other loops cover: only those holding a full chunk are tried.
                if name == "map-chunks"
                    && checkpoint
                        .pointer("/state/fibers")
                        .is_some_and(|f| !f.to_string().contains("\"chunks\""))
                {
                    continue;
                }
                let now = serde_json::from_value(checkpoint["now"].clone()).expect("now");
                out.push((
                    name.clone(),
                    fixture["input"].clone(),
                    now,
                    checkpoint["state"].clone(),
                    fixture_blobs(&fixture),
                ));
            }
        }
    }
    out
}

/// Restores `state` (a mutated checkpoint) as a worker does and runs it to its end. A state that
/// does not decode fails its run; one that decodes must never panic, and its run must end (a
/// corrupt one with a clear error) or go on, never wait on nothing.
fn survives(
    flows: &Flows,
    flow: &CompiledFlow,
    ctx: &RunContext,
    now: DateTime<Utc>,
    state: Value,
    blobs: &Blobs,
) -> Result<(), String> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let trace = match bench(flows, now, blobs).try_resume(flow, ctx, state) {
            Ok(trace) => trace,
            // The driver goes on from every checkpoint as it reads back, and stops a run whose
            // resume from it would differ from the run in memory. A corrupted state may well do
            // that (a resume checks the state again and fails the run as corrupt), and the driver
            // stops it with a clear error: neither a panic nor a stranded run.
            Err(DriveError::NotResumable { .. }) => return Ok(()),
            Err(error) => return Err(chain(&error)),
        };
        match trace.progress {
            // Every card call and helper run is answered at once: a run still pending waits on
            // nothing.
            Progress::Pending => Err(format!("the run of `{}` waits on nothing", flow.flow.name)),
            Progress::Succeeded(_) | Progress::Failed(_) => Ok(()),
        }
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )),
    }
}

/// Property: no saved state, however corrupted, makes the engine panic or strand a run. Every
/// place of every real checkpoint is changed in every listed way, one at a time; then random
/// combinations of several changes are tried.
#[test]
fn corrupted_checkpoints_never_panic_or_strand_the_run() {
    let flows = flows();
    let mut failures = Vec::new();
    let mut tried = 0;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for (name, input, now, state, blobs) in real_checkpoints() {
        let flow = &flows[&name];
        let ctx = context(flow, "01FIXTURE", t0(), input);
        let mut all = Vec::new();
        places(&state, &mut Vec::new(), &mut all);
        for path in &all {
            let original = at(&state, path).cloned().unwrap_or(Value::Null);
            for with in variants(path, &original) {
                let mut mutated = state.clone();
                mutate(&mut mutated, path, with.clone());
                tried += 1;
                if let Err(e) = survives(&flows, flow, &ctx, now, mutated, &blobs) {
                    failures.push(format!("{name}: {path:?} = {with:?}: {e}"));
                }
            }
        }
        for _ in 0..40 {
            let mut mutated = state.clone();
            let mut applied = Vec::new();
            for _ in 0..3 {
                let path = &all[rng.below(all.len())];
                let original = at(&mutated, path).cloned().unwrap_or(Value::Null);
                let options = variants(path, &original);
                let with = options[rng.below(options.len())].clone();
                mutate(&mut mutated, path, with.clone());
                applied.push(format!("{path:?} = {with:?}"));
            }
            tried += 1;
            if let Err(e) = survives(&flows, flow, &ctx, now, mutated, &blobs) {
                failures.push(format!("{name}: {}: {e}", applied.join(", ")));
            }
        }
    }
    assert!(tried > 10_000, "only {tried} states tried");
    assert!(
        failures.is_empty(),
        "{} of {tried} corrupted states broke the engine, such as:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
