//! Flow tests as users write them: test files in YAML, small flows, and what `idflow test` reports.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::yaml::to_yaml;
use super::*;
use crate::flowfile;

// ---------------------------------------------------------------------------------------------------
// Helpers

fn project(flows: &[&str]) -> TestProject {
    let flows = flows
        .iter()
        .map(|source| {
            flowfile::parse_flow("flow.yaml", source)
                .unwrap_or_else(|e| panic!("flow does not parse: {e:?}\n{source}"))
        })
        .collect();
    TestProject::from_flows(flows, Map::new())
}

/// Parses, checks and runs a test file; panics on format problems.
fn run(project: &TestProject, test: &str) -> Vec<CaseReport> {
    let file = parse_test_file("t.test.yaml", test)
        .unwrap_or_else(|e| panic!("test file does not parse: {}", lines(&e)));
    let problems = file.check(project);
    assert!(problems.is_empty(), "check: {}", lines(&problems));
    run_file(project, &file, None)
}

fn lines(diagnostics: &[crate::diag::Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per report: `name: ok`, `name: error <message>`, or `name: <path> <note>` per mismatch.
fn summary(reports: &[CaseReport]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        match &r.outcome {
            Outcome::Passed => out.push(format!("{}: ok", r.name)),
            Outcome::Error(message) => out.push(format!("{}: error {message}", r.name)),
            Outcome::Failed(mismatches) => {
                for m in mismatches {
                    let detail = match (&m.note, &m.expected) {
                        (Some(note), _) => note.clone(),
                        (None, Some(expected)) => format!(
                            "expected {expected}, got {}",
                            m.actual
                                .as_ref()
                                .map_or("(missing)".to_owned(), ToString::to_string)
                        ),
                        (None, None) => String::new(),
                    };
                    out.push(format!("{}: {} {detail}", r.name, m.path));
                }
            }
        }
        for w in &r.warnings {
            out.push(format!("{}: warning {w}", r.name));
        }
    }
    out
}

#[track_caller]
fn check_run(flows: &[&str], test: &str, expected: &[&str]) {
    let reports = run(&project(flows), test);
    assert_eq!(summary(&reports), expected, "\n--- test ---\n{test}");
}

const PROBE: &str = r#"
name: probe
steps:
  - id: call
    card: http.request
    retry: { max: 3, backoff: 5s, on: [429, 5xx, network] }
    with: { url: "https://api.example.com/{{ input.path | default('health') }}" }
  - card: flow.return
    with: { body: { status: "{{ steps.call.status }}", at: "{{ now() }}" } }
"#;

// ---------------------------------------------------------------------------------------------------
// Partial matching and diffs

#[track_caller]
fn check_diff(expected: Value, actual: Value, paths: &[&str]) {
    let mut out = Vec::new();
    diff(&expected, &actual, "", &mut out);
    let got: Vec<&str> = out.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(got, paths, "expected {expected} vs actual {actual}");
}

#[test]
fn objects_match_partially_and_lists_item_by_item() {
    check_diff(json!({"a": 1}), json!({"a": 1, "b": 2}), &[]);
    check_diff(json!({"a": {"b": 1}}), json!({"a": {"b": 1, "c": 3}}), &[]);
    check_diff(json!({"a": {"b": 1}}), json!({"a": {"b": 2}}), &["a.b"]);
    check_diff(json!({"a": 1, "z": 0}), json!({"a": 2}), &["a", "z"]);
    check_diff(
        json!([{"id": 1}, {"id": 2}]),
        json!([{"id": 1, "x": 0}, {"id": 2}]),
        &[],
    );
    check_diff(
        json!([{"id": 1}, {"id": 3}]),
        json!([{"id": 1}, {"id": 2}]),
        &["[1].id"],
    );
    check_diff(json!([1, 2]), json!([1, 2, 3]), &[""]);
    check_diff(
        json!({"h": {"x.y": 1}}),
        json!({"h": {"x.y": 2}}),
        &["h[\"x.y\"]"],
    );
    check_diff(json!({}), json!("anything but an object"), &[""]);
}

#[test]
fn numbers_match_by_value_and_types_never_convert() {
    check_diff(json!(200), json!(200.0), &[]);
    check_diff(json!(-1), json!(-1), &[]);
    check_diff(json!(0.5), json!(0.25), &[""]);
    check_diff(json!("200"), json!(200), &[""]);
    check_diff(json!(null), json!(false), &[""]);
    check_diff(json!(true), json!(true), &[]);
}

#[test]
fn a_mismatch_reads_as_path_expected_and_actual() {
    let mut out = Vec::new();
    diff(
        &json!({"status": "200", "body": {"id": 1}}),
        &json!({"status": 200}),
        "return",
        &mut out,
    );
    let text: String = out.iter().map(|m| m.render("  ")).collect();
    assert_eq!(
        text,
        "  return.status\n    expected: \"200\"\n    actual:   200\n  return.body\n    expected: {\"id\":1}\n    actual:   (missing)\n"
    );
    let same_text = Mismatch::values("x", &json!(1), Some(&json!(1.0))).render("");
    assert!(!same_text.contains("expected)"), "{same_text}");
    let typed = Mismatch::values("x", &json!("1"), Some(&json!(1))).render("");
    assert_eq!(typed, "x\n  expected: \"1\"\n  actual:   1\n");
    let shown = Mismatch::values("x", &json!(null), Some(&json!("null"))).render("");
    assert_eq!(
        shown, "x\n  expected: null\n  actual:   \"null\"\n",
        "different texts need no type note"
    );
}

#[test]
fn history_names_resolve_to_their_step() {
    let check = |name: &str, base: &str| assert_eq!(base_step(name), base, "{name}");
    check("call", "call");
    check("each[2].call", "call");
    check("outer[1].inner[0].call", "call");
    check("digests[0]", "digests");
    check("outer[1].digests[3]", "digests");
    check("s0[2].s0.steps.0", "s0.steps.0");
    check("s2.then.0", "s2.then.0");
    assert!(step_matches("call", "each[2].call"));
    assert!(step_matches("each[2].call", "each[2].call"));
    assert!(!step_matches("each[1].call", "each[2].call"));
    assert!(!step_matches("cal", "call"));
}

#[test]
fn test_files_are_found_beside_flows_and_under_tests() {
    let dir = temp_dir("discover");
    for name in [
        "a.yaml",
        "a.test.yaml",
        "b.test.json",
        ".hidden.test.yaml",
        "tests/c.test.yml",
        "tests/notes.md",
    ] {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir)).ok();
        std::fs::write(&path, "").ok();
    }
    let found: Vec<String> = test_files(&dir)
        .iter()
        .map(|p| {
            p.strip_prefix(&dir)
                .unwrap_or(p)
                .display()
                .to_string()
                .replace('\\', "/")
        })
        .collect();
    assert_eq!(found, ["a.test.yaml", "b.test.json", "tests/c.test.yml"]);
    assert_eq!(flows_dir_of(&dir.join("tests/c.test.yml")), dir);
    assert_eq!(flows_dir_of(&dir.join("a.test.yaml")), dir);
    assert_eq!(flows_dir_of(Path::new("a.test.yaml")), PathBuf::from("."));
    std::fs::remove_dir_all(&dir).ok();
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "idflow-testing-{name}-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&dir).ok();
    dir
}

// ---------------------------------------------------------------------------------------------------
// Format errors: same file:line:column: path: message as flow files

#[track_caller]
fn check_format(source: &str, expected: &[&str]) {
    let got: Vec<String> = match parse_test_file("probe.test.yaml", source) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(got, expected, "\n--- source ---\n{source}");
}

#[test]
fn malformed_test_files_name_file_line_and_field() {
    check_format(
        "flow: probe\ncases:\n  - name: ok\n    expect: { status: succeeded }\n",
        &[],
    );
    // The flow defaults to the file name.
    check_format("cases:\n  - name: ok\n", &[]);
    check_format(
        "flow: probe\ncase:\n  - name: x\n",
        &[
            "probe.test.yaml:1:1: missing required key `cases` (a list of test cases)",
            "probe.test.yaml:2:1: case: unknown key `case`, expected one of flow, now, vars, secrets, cases; did you mean `cases`?",
        ],
    );
    check_format(
        "cases: []\n",
        &["probe.test.yaml:1:8: cases: expected at least one case"],
    );
    check_format(
        "cases:\n  - name: a\n    inptu: {}\n  - input: {}\n",
        &[
            "probe.test.yaml:3:5: cases[0].inptu: unknown key `inptu`, expected one of name, input, event, delivery, now, vars, secrets, stubs, expect; did you mean `input`?",
            "probe.test.yaml:4:5: cases[1]: missing required key `name` (what the case checks)",
        ],
    );
    check_format(
        "cases:\n  - name: a\n  - name: a\n",
        &[
            "probe.test.yaml:3:11: cases[1].name: duplicate case name `a` (first at line 2); names pick cases with --filter and in reports",
        ],
    );
    check_format(
        "now: yesterday\ncases:\n  - name: a\n    now: 2026-13-01T00:00:00Z\n",
        &[
            "probe.test.yaml:1:6: now: expected an RFC 3339 date-time such as `2026-01-05T08:00:00Z`, got `yesterday`",
            "probe.test.yaml:4:10: cases[0].now: expected an RFC 3339 date-time such as `2026-01-05T08:00:00Z`, got `2026-13-01T00:00:00Z`",
        ],
    );
    check_format(
        "cases:\n  - name: a\n    input: {}\n    event: {}\n",
        &[
            "probe.test.yaml:4:5: cases[0].event: a case has `input` or `event`, not both: `event` is for event flows, whose input is built from it",
        ],
    );
    check_format(
        "secrets: { token: 42 }\ncases:\n  - name: a\n",
        &[
            "probe.test.yaml:1:19: secrets.token: expected the secret's test value as text, got the number 42",
        ],
    );
}

#[test]
fn malformed_stubs_say_what_a_stub_needs() {
    let stub = |yaml: &str| format!("cases:\n  - name: a\n    stubs:\n      - {yaml}\n");
    check_format(&stub("{ step: call, output: 1 }"), &[]);
    check_format(
        &stub("{ card: http.request, input: { url: x }, output: null }"),
        &[],
    );
    check_format(
        &stub("{ output: 1 }"),
        &[
            "probe.test.yaml:4:9: cases[0].stubs[0]: a stub needs `step` (a step id) or `card` (a card name) to say which calls it answers",
        ],
    );
    check_format(
        &stub("{ step: call }"),
        &[
            "probe.test.yaml:4:9: cases[0].stubs[0]: a stub needs one answer: `output`, `error` or `sequence` (answers for successive calls)",
        ],
    );
    check_format(
        &stub("{ step: call, output: 1, error: { code: network } }"),
        &[
            "probe.test.yaml:4:34: cases[0].stubs[0].error: a stub has one of `output`, `error` or `sequence`, not both `output` and `error`",
        ],
    );
    check_format(
        &stub("{ step: call, outptu: 1 }"),
        &[
            "probe.test.yaml:4:9: cases[0].stubs[0]: a stub needs one answer: `output`, `error` or `sequence` (answers for successive calls)",
            "probe.test.yaml:4:23: cases[0].stubs[0].outptu: unknown key `outptu`, expected one of step, card, input, output, error, sequence; did you mean `output`?",
        ],
    );
    check_format(
        &stub("{ step: call, sequence: [] }"),
        &["probe.test.yaml:4:33: cases[0].stubs[0].sequence: expected at least one answer"],
    );
    check_format(
        &stub("{ step: call, sequence: [{ output: 1, error: { code: network } }] }"),
        &[
            "probe.test.yaml:4:34: cases[0].stubs[0].sequence[0]: each answer of a sequence has exactly one of `output` or `error`",
        ],
    );
}

#[test]
fn malformed_errors_say_which_shape_applies() {
    let error = |yaml: &str| {
        format!("cases:\n  - name: a\n    stubs:\n      - step: call\n        error: {yaml}\n")
    };
    for ok in [
        "{ status: 429, body: { errorCode: E0000047 }, retry_after: 2s }",
        "{ status: 404, message: gone }",
        "{ code: network }",
        "{ code: timeout }",
        "{ code: invalid_input, field: user, message: bad }",
        "{ code: mine, retryable: true }",
    ] {
        check_format(&error(ok), &[]);
    }
    check_format(
        &error("{ message: boom }"),
        &[
            "probe.test.yaml:5:16: cases[0].stubs[0].error: an error needs `status` (an HTTP error, such as 429) or `code` (`network`, `timeout`, `invalid_input` or your own)",
        ],
    );
    check_format(
        &error("{ status: 700 }"),
        &[
            "probe.test.yaml:5:26: cases[0].stubs[0].error.status: expected an HTTP status between 100 and 599, got the number 700",
        ],
    );
    check_format(
        &error("{ status: 429, retry_after: soon }"),
        &[
            "probe.test.yaml:5:44: cases[0].stubs[0].error.retry_after: expected a duration such as `30s`, `10m` or `1h30m`, got `soon`",
        ],
    );
    check_format(
        &error("{ code: network, body: {} }"),
        &[
            "probe.test.yaml:5:33: cases[0].stubs[0].error.body: `body` applies only to an HTTP error (`status`)",
        ],
    );
    check_format(
        &error("{ status: 500, code: network }"),
        &[
            "probe.test.yaml:5:31: cases[0].stubs[0].error.code: an error with `status` is an HTTP error (code `http_status`); leave out `code: network` or `status`",
        ],
    );
}

#[test]
fn malformed_expectations_name_the_field() {
    let expect = |yaml: &str| format!("cases:\n  - name: a\n    expect: {yaml}\n");
    check_format(
        &expect("{ status: succeded }"),
        &[
            "probe.test.yaml:3:23: cases[0].expect.status: expected one of succeeded, failed, got `succeded`; did you mean `succeeded`?",
        ],
    );
    check_format(
        &expect("{ steps: { call: { attempts: 0 } } }"),
        &[
            "probe.test.yaml:3:42: cases[0].expect.steps.call.attempts: expected a whole number ≥ 1, got the number 0",
        ],
    );
    check_format(
        &expect("{ return: { body: 1, stauts: 200 } }"),
        &[
            "probe.test.yaml:3:34: cases[0].expect.return.stauts: unknown key `stauts`, expected one of status, headers, body; did you mean `status`?",
        ],
    );
    check_format(
        &expect("{ calls: [{ count: 2 }] }"),
        &["probe.test.yaml:3:23: cases[0].expect.calls[0]: a call needs `card` or `step`"],
    );
    check_format(
        &expect("{ started: false, status: succeeded }"),
        &[
            "probe.test.yaml:3:31: cases[0].expect.status: `status` cannot be checked with `started: false`: no run starts",
        ],
    );
    check_format(
        &expect("{ status: succeeded, error: { code: x } }"),
        &[
            "probe.test.yaml:3:34: cases[0].expect.error: `error` describes a failed run, but `status` is `succeeded`",
        ],
    );
}

#[test]
fn checks_against_the_project_name_steps_cards_and_triggers() {
    let project = project(&[
        PROBE,
        "name: hook\ntrigger: { event: { okta: [user.lifecycle.create] } }\nsteps:\n  - { id: t, card: text.compose, with: { text: hi } }\n",
        "name: endpoint\ntrigger: { api: { auth: public } }\nsteps:\n  - { id: t, card: text.compose, with: { text: hi } }\n",
    ]);
    let check = |source: &str, expected: &[&str]| {
        let file = parse_test_file("t.test.yaml", source)
            .unwrap_or_else(|e| panic!("does not parse: {}", lines(&e)));
        let got: Vec<String> = file
            .check(&project)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "\n{source}");
    };
    check(
        "flow: probe\ncases:\n  - name: a\n    stubs: [{ step: call, output: {} }]\n",
        &[],
    );
    check(
        "flow: prob\ncases:\n  - name: a\n",
        &["t.test.yaml:1:7: flow: unknown flow `prob`; did you mean `probe`?"],
    );
    check(
        "flow: probe\ncases:\n  - name: a\n    stubs:\n      - { step: cal, output: {} }\n      - { card: text.compose, output: x }\n      - { card: flow.return, output: x }\n      - { step: s1, output: x }\n      - { step: call, card: flow.call, output: x }\n",
        &[
            "t.test.yaml:5:17: cases[0].stubs[0].step: no step `cal` in flow `probe` or the helper flows it runs; did you mean `call`?",
            "t.test.yaml:6:17: cases[0].stubs[1].card: `text.compose`, a pure card: it always runs for real, since it only computes from its input and the time (set `now:` to fix the time, stub the cards that feed it)",
            "t.test.yaml:7:17: cases[0].stubs[2].card: `flow.return` is handled by the engine itself and cannot be stubbed",
            "t.test.yaml:8:17: cases[0].stubs[3].step: step `s1` is `flow.return`, which the engine handles itself; only card calls and helper runs can be stubbed",
            "t.test.yaml:9:29: cases[0].stubs[4].card: step `call` calls `http.request`, not `flow.call`",
        ],
    );
    check(
        "flow: probe\ncases:\n  - name: a\n    expect:\n      steps: { cal: { status: failed } }\n      calls: [{ card: http.reqest }]\n      not_called: [okta.nope]\n",
        &[
            "t.test.yaml:5:21: cases[0].expect.steps.cal: no step `cal` in flow `probe`; did you mean `call`?",
            "t.test.yaml:6:23: cases[0].expect.calls[0].card: unknown card `http.reqest`; did you mean `http.request`?",
            "t.test.yaml:7:20: cases[0].expect.not_called[0]: `okta.nope` is neither a card nor a step of flow `probe`; did you mean `okta.api`?",
        ],
    );
    check(
        "flow: probe\ncases:\n  - name: a\n    event: {}\n    expect: { started: true }\n",
        &[
            "t.test.yaml:4:12: cases[0].event: `event` is for event flows; flow `probe` has a `manual` trigger, so give its `input`",
            "t.test.yaml:5:24: cases[0].expect.started: `started` applies to event flows, whose filter decides whether a run starts",
        ],
    );
    check(
        "flow: hook\ncases:\n  - name: a\n    input: {}\n",
        &[
            "t.test.yaml:3:5: cases[0]: flow `hook` is started by Okta events: give the System Log `event` (its input is built from it)",
        ],
    );
    check(
        "cases:\n  - name: a\n",
        &[
            "t.test.yaml:1:1: unknown flow `t` (named after the file; set `flow:` to test another flow)",
        ],
    );
    check(
        "flow: endpoint\ncases:\n  - name: a\n    input: { body: {}, name: Ada }\n",
        &[
            "t.test.yaml:4:12: cases[0].input: flow `endpoint` is an API endpoint: its input is the request (`method`, `body`, `query`, `headers`), not `name`; put the request body under `body`",
        ],
    );
}

// ---------------------------------------------------------------------------------------------------
// Running cases

#[test]
fn stubs_answer_by_step_card_and_input_first_match_wins() {
    check_run(
        &[PROBE],
        r#"
flow: probe
cases:
  - name: by input
    input: { path: users }
    stubs:
      - { card: http.request, input: { url: "https://api.example.com/groups" }, output: { status: 500 } }
      - { card: http.request, input: { url: "https://api.example.com/users" }, output: { status: 201 } }
      - { step: call, output: { status: 299 } }
    expect:
      return: { body: { status: 201 } }
"#,
        &[
            "by input: ok",
            "by input: warning stub #1 (card http.request) was never used; the call it answers did not happen, or an earlier stub answered it",
            "by input: warning stub #3 (step call) was never used; the call it answers did not happen, or an earlier stub answered it",
        ],
    );
}

#[test]
fn a_call_without_a_stub_fails_the_case_and_never_reaches_the_network() {
    check_run(
        &[PROBE],
        "flow: probe\ncases:\n  - name: bare\n",
        &[
            "bare: error no stub for card `http.request` at step `call`; add one under `stubs:` (tests never call the network)",
        ],
    );
}

#[test]
fn sequences_answer_successive_calls_and_retries_move_the_frozen_clock() {
    check_run(
        &[PROBE],
        r#"
flow: probe
now: 2026-01-05T08:00:00Z
cases:
  - name: retried
    stubs:
      - step: call
        sequence:
          - error: { status: 503 }
          - error: { status: 429, retry_after: 1m }
          - output: { status: 200 }
    expect:
      steps:
        call: { status: succeeded, attempts: 3 }
      # 5 s, then max(10 s, 1 min) of backoff.
      return: { body: { status: 200, at: "2026-01-05T08:01:05.000Z" } }
      calls:
        - { card: http.request, count: 3 }
  - name: runs out
    stubs:
      - step: call
        sequence:
          - error: { status: 503 }
"#,
        &[
            "retried: ok",
            "runs out: error stub #1 (step call) gave all 1 answer(s) of its sequence; call 2 of `http.request` at step `call` has no answer",
        ],
    );
}

#[test]
fn failures_are_reported_per_expectation_with_the_default_status() {
    check_run(
        &[PROBE],
        r#"
flow: probe
cases:
  - name: unexpected failure
    stubs: [{ step: call, error: { status: 404, body: { errorCode: E0000007 } } }]
  - name: expected failure
    stubs: [{ step: call, error: { status: 404, body: { errorCode: E0000007 } } }]
    expect:
      error: { code: step_failed, step: call }
      steps:
        call: { status: failed, attempts: 1, error: { code: http_status, status: 404, detail: { errorCode: E0000007 } } }
      not_called: [flow.return]
  - name: wrong guesses
    stubs: [{ step: call, error: { code: network } }]
    expect:
      return: { status: 200 }
      steps:
        call: { attempts: 2 }
      calls:
        - { step: call, count: 1 }
      not_called: [call]
"#,
        &[
            "unexpected failure: status the run failed at step `call`: stub answered 404 Not Found",
            "expected failure: ok",
            "wrong guesses: status the run failed at step `call`: network error: stubbed network error",
            "wrong guesses: return the run failed, so it returned nothing",
            "wrong guesses: steps.call.attempts expected 2, got 3",
            "wrong guesses: calls[0] expected 1 call(s) of step `call`, got 3",
            "wrong guesses: not_called[0] `call` was called 3 time(s)",
        ],
    );
}

#[test]
fn helper_flows_run_for_real_unless_a_flow_call_stub_answers() {
    let helper = r#"
name: lookup
trigger: { helper: { inputs: { id: text } } }
steps:
  - id: get
    card: http.request
    with: { url: "https://api.example.com/users/{{ input.id }}" }
  - card: flow.return
    with: { body: "{{ steps.get.body.name }}" }
"#;
    let caller = r#"
name: caller
steps:
  - id: one
    card: flow.call
    with: { flow: lookup, with: { id: "1" } }
  - id: all
    map: "{{ input.ids }}"
    as: id
    flow: lookup
  - card: flow.return
    with: { body: { one: "{{ steps.one }}", all: "{{ steps.all }}" } }
"#;
    check_run(
        &[helper, caller],
        r#"
flow: caller
cases:
  - name: real helpers
    input: { ids: ["2", "3"] }
    stubs:
      - { step: get, input: { url: "https://api.example.com/users/1" }, output: { body: { name: Ada } } }
      - { step: get, output: { body: { name: Someone } } }
    expect:
      return: { body: { one: Ada, all: [Someone, Someone] } }
      calls:
        - { card: flow.call, count: 3 }
        - { card: flow.call, input: { flow: lookup, with: { id: "3" } }, count: 1 }
        - { card: http.request, count: 3 }
  - name: stubbed helpers
    input: { ids: ["2", "3"] }
    stubs:
      - { step: one, output: Stubbed }
      - { step: "all[1]", output: Third }
      - { step: all, output: Any }
    expect:
      return: { body: { one: Stubbed, all: [Any, Third] } }
      not_called: [http.request]
  - name: failing helper
    input: { ids: [] }
    stubs:
      - { card: flow.call, error: { code: gone, message: no such user } }
    expect:
      error: { step: one, message: "helper run failed: no such user" }
"#,
        &[
            "real helpers: ok",
            "stubbed helpers: ok",
            "failing helper: ok",
        ],
    );
}

#[test]
fn a_helper_that_calls_itself_stops_the_case() {
    let looping = "name: again\ntrigger: { helper: { inputs: {} } }\nsteps:\n  - { id: me, card: flow.call, with: { flow: again } }\n";
    let reports = run(
        &project(&[looping]),
        "flow: again\ncases:\n  - name: forever\n",
    );
    assert_eq!(
        summary(&reports),
        [
            "forever: error helper flows call each other more than 32 levels deep (at step `me` in helper flow `again`); stub the `flow.call`"
        ]
    );
}

#[test]
fn waits_take_no_time_and_now_is_frozen_per_case() {
    let flow = r#"
name: waiter
steps:
  - id: before
    card: date.now
    with: {}
  - wait: 3d
  - id: after
    card: date.now
    with: {}
  - wait_until: "{{ input.until }}"
  - card: flow.return
    with: { body: { before: "{{ steps.before }}", after: "{{ steps.after }}", end: "{{ now() }}", started: "{{ run.started_at }}" } }
"#;
    check_run(
        &[flow],
        r#"
flow: waiter
now: 2026-01-05T08:00:00Z
cases:
  - name: three days later
    input: { until: "2026-01-09T00:00:00Z" }
    expect:
      return:
        body:
          before: "2026-01-05T08:00:00Z"
          after: "2026-01-08T08:00:00Z"
          end: "2026-01-09T00:00:00.000Z"
          started: "2026-01-05T08:00:00.000Z"
  - name: own now
    now: 2027-06-01T00:00:00Z
    input: { until: "2020-01-01T00:00:00Z" }
    expect:
      return: { body: { before: "2027-06-01T00:00:00Z", end: "2027-06-04T00:00:00.000Z" } }
"#,
        &["three days later: ok", "own now: ok"],
    );
}

#[test]
fn event_flows_apply_types_and_filter_to_the_event() {
    let flow = r#"
name: watch
trigger:
  event:
    okta: [group.user_membership.add, group.user_membership.remove]
    filter: "{{ event.target | selectattr('displayName', 'eq', 'Admins') | list | length > 0 and delivery.eventType == 'com.okta.event_hook' }}"
steps:
  - card: flow.return
    with: { body: { type: "{{ input.event.eventType }}", uuid: "{{ input.event.uuid }}", at: "{{ input.delivery.eventTime }}", source: "{{ input.delivery.source }}" } }
"#;
    check_run(
        &[flow],
        r#"
flow: watch
cases:
  - name: admins
    event: { target: [{ displayName: Admins }] }
    delivery: { source: "https://acme.okta.com/api/v1/eventHooks/who1" }
    expect:
      started: true
      return:
        body:
          type: group.user_membership.add
          uuid: 00000000-0000-4000-8000-000000000001
          at: "2026-01-05T08:00:00.000Z"
          source: "https://acme.okta.com/api/v1/eventHooks/who1"
  - name: other group
    event: { target: [{ displayName: Staff }] }
    expect: { started: false }
  - name: other type
    event: { eventType: user.session.start, target: [{ displayName: Admins }] }
    expect: { started: false }
  - name: wrongly expected to start
    event: { target: [] }
  - name: wrongly expected not to start
    event: { eventType: group.user_membership.remove, target: [{ displayName: Admins }] }
    stubs: [{ card: http.request, output: {} }]
    expect: { started: false }
"#,
        &[
            "admins: ok",
            "other group: ok",
            "other type: ok",
            "wrongly expected to start: started no run started: the trigger's filter is false",
            "wrongly expected not to start: started the event passed the trigger's filter and a run started",
            "wrongly expected not to start: warning stub #1 (card http.request) was never used; the call it answers did not happen, or an earlier stub answered it",
        ],
    );
}

#[test]
fn trigger_inputs_are_completed_per_trigger_kind() {
    let api = r#"
name: endpoint
trigger: { api: { auth: public } }
steps:
  - card: flow.return
    with: { body: "{{ input }}" }
"#;
    let schedule = r#"
name: nightly
trigger: { schedule: { rate: 1 hour } }
steps:
  - card: flow.return
    with: { body: "{{ input }}" }
"#;
    let delegated = r#"
name: grant
trigger: { delegated: { inputs: { user: text, until: { type: datetime, required: false } }, callers: [bot] } }
steps:
  - card: flow.return
    with: { body: "{{ input }}" }
"#;
    let project = project(&[api, schedule, delegated]);
    let reports = run(
        &project,
        "flow: endpoint\ncases:\n  - name: api\n    input: { body: { a: 1 } }\n    expect:\n      return: { body: { method: POST, body: { a: 1 }, query: {}, headers: {} } }\n",
    );
    assert_eq!(summary(&reports), ["api: ok"]);
    let reports = run(
        &project,
        "flow: nightly\nnow: 2026-02-01T00:00:00Z\ncases:\n  - name: schedule\n    expect:\n      return: { body: { scheduled_for: \"2026-02-01T00:00:00+00:00\" } }\n",
    );
    assert_eq!(summary(&reports), ["schedule: ok"]);
    let reports = run(
        &project,
        "flow: grant\ncases:\n  - name: given\n    input: { user: ada }\n  - name: missing\n    input: { until: \"2026-01-01T00:00:00Z\" }\n",
    );
    assert_eq!(
        summary(&reports),
        [
            "given: ok",
            "missing: error delegated input `user` is required; a caller could not start this run without it"
        ]
    );
}

#[test]
fn secrets_and_vars_come_from_the_test_file() {
    let flow = r#"
name: secretive
steps:
  - id: call
    card: http.request
    with:
      url: "https://{{ vars.host }}/x"
      auth: { type: bearer, token: "{{ secret('api-token') }}" }
"#;
    check_run(
        &[flow],
        r#"
flow: secretive
vars: { host: a.example.com }
secrets: { api-token: file-token }
cases:
  - name: file values
    stubs: [{ card: http.request, input: { auth: { token: file-token } }, output: {} }]
    expect:
      calls: [{ card: http.request, input: { url: "https://a.example.com/x" } }]
      # History masks secrets, as in production.
      steps:
        call: { input: { auth: { token: "[redacted]" } } }
  - name: case values
    vars: { host: b.example.com }
    secrets: { api-token: case-token }
    stubs: [{ card: http.request, input: { url: "https://b.example.com/x", auth: { token: case-token } }, output: {} }]
"#,
        &["file values: ok", "case values: ok"],
    );
    check_run(
        &[flow],
        "flow: secretive\nvars: { host: h }\ncases:\n  - name: default\n    stubs: [{ card: http.request, input: { auth: { token: test-secret-api-token } }, output: {} }]\n",
        &["default: ok"],
    );
}

#[test]
fn steps_inside_loops_are_named_by_iteration() {
    let flow = r#"
name: each
steps:
  - id: notify
    for_each: "{{ input.users }}"
    as: user
    steps:
      - id: post
        card: http.request
        with: { method: POST, url: "https://chat.example.com/{{ user }}" }
"#;
    check_run(
        &[flow],
        r#"
flow: each
cases:
  - name: iterations
    input: { users: [ada, bob, cy] }
    stubs:
      - { step: "notify[1].post", error: { code: network } }
      - { step: post, output: { status: 200 } }
    expect:
      status: failed
      steps:
        notify[0].post: { status: succeeded }
        notify[1].post: { status: failed, error: { code: network } }
        post: { status: failed }
      calls:
        - { step: post, count: 2 }
      not_called: ["notify[2].post"]
"#,
        &["iterations: ok"],
    );
}

#[test]
fn filter_selects_cases_by_name_or_flow() {
    assert!(selected("greet", "counts groups", None));
    assert!(selected("greet", "counts groups", Some("COUNTS")));
    assert!(selected("greet", "counts groups", Some("gree")));
    assert!(!selected("greet", "counts groups", Some("retries")));
}

// ---------------------------------------------------------------------------------------------------
// The shipped examples and the documentation

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

#[test]
fn every_example_flow_has_passing_tests() {
    let dir = repo_path("examples/flows");
    let files = test_files(&dir);
    let run = run_tests(&dir, &files, None, None);
    assert!(run.diagnostics.is_empty(), "{}", lines(&run.diagnostics));
    let failures: Vec<String> = run
        .reports
        .iter()
        .filter(|r| !r.passed() || !r.warnings.is_empty())
        .map(|r| {
            format!(
                "{} / {}:\n{}{:?}",
                r.file,
                r.name,
                r.render_failure("  "),
                r.warnings
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let project = TestProject::load(&dir);
    let tested: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| load_test_file(f).ok().map(|t| t.flow))
        .collect();
    let untested: Vec<&str> = project
        .flow_names()
        .filter(|f| !tested.contains(*f))
        .collect();
    assert!(
        untested.is_empty(),
        "example flows without tests: {untested:?}"
    );
}

/// The fenced blocks of docs/flow-tests.md, by the file they claim to be (`# flows/x.yaml`).
fn doc_blocks() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_path("docs/flow-tests.md")).unwrap_or_default();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                let first = block.lines().next().unwrap_or("").to_owned();
                let name = first
                    .strip_prefix("# flows/")
                    .map_or_else(String::new, str::to_owned);
                blocks.push((name, std::mem::take(block)));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_documented_example_passes() {
    let blocks = doc_blocks();
    let flows: Vec<crate::model::Flow> = blocks
        .iter()
        .filter(|(name, _)| !name.is_empty() && !is_test_file_name(name))
        .map(|(name, source)| {
            flowfile::parse_flow(name, source)
                .unwrap_or_else(|e| panic!("documented flow {name}: {}", lines(&e)))
        })
        .collect();
    let kinds: std::collections::BTreeSet<&str> = flows.iter().map(|f| f.trigger.kind()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["api", "delegated", "event", "helper", "manual", "schedule"],
        "one example per trigger kind"
    );
    let project = TestProject::from_flows(flows, Map::new());
    let mut ran = 0;
    for (name, source) in blocks.iter().filter(|(n, _)| is_test_file_name(n)) {
        let file = parse_test_file(name, source)
            .unwrap_or_else(|e| panic!("documented test {name}: {}", lines(&e)));
        let problems = file.check(&project);
        assert!(problems.is_empty(), "{}", lines(&problems));
        for report in run_file(&project, &file, None) {
            assert!(
                report.passed() && report.warnings.is_empty(),
                "{name} / {}:\n{}{:?}",
                report.name,
                report.render_failure("  "),
                report.warnings
            );
            ran += 1;
        }
    }
    assert!(ran >= 12, "only {ran} documented cases ran");

    // The format overview runs against the shipped check-endpoint example.
    let (_, overview) = blocks
        .iter()
        .find(|(_, source)| source.starts_with("flow: check-endpoint"))
        .unwrap_or_else(|| panic!("the format overview is missing"));
    let examples = TestProject::load(&repo_path("examples/flows"));
    let file = parse_test_file("overview.test.yaml", overview)
        .unwrap_or_else(|e| panic!("overview: {}", lines(&e)));
    assert!(file.check(&examples).is_empty());
    let reports = run_file(&examples, &file, None);
    assert_eq!(summary(&reports), ["retries a 503 and succeeds: ok"]);

    // Each documented error is a valid stub answer.
    let (_, errors) = blocks
        .iter()
        .find(|(_, source)| source.contains("retry_after: 2s"))
        .unwrap_or_else(|| panic!("the error examples are missing"));
    for line in errors.lines() {
        let answer = line.split(" #").next().unwrap_or(line).trim();
        let source =
            format!("cases:\n  - name: a\n    stubs:\n      - step: x\n        {answer}\n");
        check_format(&source, &[]);
    }
}

// ---------------------------------------------------------------------------------------------------
// Recording

/// Runs a case, then turns its run into an admin API run detail, as `GET /api/runs/{id}` returns it.
fn run_detail_of(flow: &str, helpers: &[&str], test: &str, history: &str) -> Value {
    let mut sources = vec![flow];
    sources.extend_from_slice(helpers);
    let project = project(&sources);
    let reports = run(&project, test);
    let report = &reports[0];
    let flow = project
        .flow(&report.flow)
        .unwrap_or_else(|| panic!("flow missing"));
    let started = chrono::DateTime::parse_from_rfc3339(DEFAULT_NOW)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let result = report
        .result
        .clone()
        .unwrap_or_else(|| panic!("the source case did not run"));
    let failed = result.is_err();
    let keep = |r: &crate::run::StepRecord| -> crate::run::StepRecord {
        let mut r = r.clone();
        let keep_data =
            history == "all" || (history == "errors" && r.status == crate::run::StepStatus::Failed);
        if !keep_data {
            r.input = None;
            r.output = None;
        }
        r
    };
    let steps: Vec<crate::run::StepRecord> = report.steps.iter().map(keep).collect();
    let run = crate::run::Run {
        id: crate::run::RunId::new_at(started),
        flow: flow.flow.name.clone(),
        flow_version: flow.flow.version.clone(),
        trigger: crate::run::TriggerInfo::Manual,
        status: if failed {
            crate::run::RunStatus::Failed
        } else {
            crate::run::RunStatus::Succeeded
        },
        input: if history == "none" {
            Value::Null
        } else {
            json!({ "path": "users" })
        },
        parent: None,
        root: None,
        created_at: started,
        started_at: Some(started),
        finished_at: Some(started),
        wake_at: None,
        output: result.clone().ok(),
        error: result.err(),
        state: None,
        step_count: u32::try_from(steps.len()).unwrap_or(0),
    };
    crate::run::run_detail(&run, &steps)
}

#[test]
fn a_recorded_run_becomes_a_passing_test() {
    let detail = run_detail_of(
        PROBE,
        &[],
        r#"
flow: probe
cases:
  - name: source
    input: { path: users }
    stubs:
      - step: call
        output: { status: 200, headers: { set-cookie: "session=abc", content-type: application/json }, body: { token: abc, users: [1, 2] } }
    expect:
      return: { body: { status: 200 } }
"#,
        "all",
    );
    let recorded = record_case(&detail).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recorded.flow, "probe");
    // Credentials never reach the test file.
    assert!(
        !recorded.file_yaml.contains("session=abc"),
        "{}",
        recorded.file_yaml
    );
    assert!(
        !recorded.file_yaml.contains("token: abc"),
        "{}",
        recorded.file_yaml
    );
    assert!(
        recorded
            .file_yaml
            .contains("content-type: application/json"),
        "{}",
        recorded.file_yaml
    );

    let project = project(&[PROBE]);
    let file = parse_test_file("probe.test.yaml", &recorded.file_yaml)
        .unwrap_or_else(|e| panic!("{}\n{}", lines(&e), recorded.file_yaml));
    assert!(file.check(&project).is_empty());
    let case = &file.cases[0];
    assert_eq!(
        case.trigger,
        CaseTrigger::Input(Some(json!({ "path": "users" })))
    );
    assert_eq!(case.stubs.len(), 1, "only I/O cards become stubs");
    assert_eq!(case.stubs[0].step.as_deref(), Some("call"));
    let reports = run_file(&project, &file, None);
    assert_eq!(
        summary(&reports),
        [format!("{}: ok", recorded.case_name)],
        "{}",
        recorded.file_yaml
    );
}

#[test]
fn a_recorded_failure_reproduces_the_error() {
    let detail = run_detail_of(
        PROBE,
        &[],
        "flow: probe\ncases:\n  - name: source\n    input: { path: users }\n    stubs: [{ step: call, error: { code: network } }]\n",
        "all",
    );
    let recorded = record_case(&detail).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        recorded.file_yaml.contains("code: network"),
        "{}",
        recorded.file_yaml
    );
    let project = project(&[PROBE]);
    let file = parse_test_file("probe.test.yaml", &recorded.file_yaml)
        .unwrap_or_else(|e| panic!("{}\n{}", lines(&e), recorded.file_yaml));
    let reports = run_file(&project, &file, None);
    assert_eq!(summary(&reports), [format!("{}: ok", recorded.case_name)]);
}

#[test]
fn runs_without_step_data_or_not_ended_cannot_be_recorded() {
    let test = "flow: probe\ncases:\n  - name: s\n    input: { path: users }\n    stubs: [{ step: call, output: { status: 200 } }]\n";
    for history in ["none", "errors"] {
        let detail = run_detail_of(PROBE, &[], test, history);
        let error = record_case(&detail).err();
        assert!(
            matches!(error, Some(RecordError::NoStepData { .. })),
            "{history}: {error:?}"
        );
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("`history: none` or `history: errors`"),
            "{message}"
        );
    }
    let mut detail = run_detail_of(PROBE, &[], test, "all");
    detail["status"] = json!("waiting");
    let error = record_case(&detail).err();
    assert!(
        matches!(&error, Some(RecordError::NotEnded { .. })),
        "{error:?}"
    );
    assert!(error.is_some_and(|e| e.is_retryable()));
    assert!(matches!(
        record_case(&json!({"id": "x"})),
        Err(RecordError::Malformed(_))
    ));
}

#[test]
fn recorded_helper_loops_become_flow_call_stubs() {
    let helper = "name: one\ntrigger: { helper: { inputs: { id: text } } }\nsteps:\n  - { id: get, card: http.request, with: { url: \"https://x.example/{{ input.id }}\" } }\n  - { card: flow.return, with: { body: \"{{ steps.get.body }}\" } }\n";
    let flow = "name: many\nsteps:\n  - { id: all, map: \"{{ input.ids }}\", as: id, flow: one }\n  - { id: first, card: flow.call, with: { flow: one, with: { id: \"0\" } } }\n";
    let mut detail = run_detail_of(
        flow,
        &[helper],
        "flow: many\ncases:\n  - name: s\n    input: { ids: [a, b] }\n    stubs: [{ step: get, output: { body: B } }]\n",
        "all",
    );
    detail["input"] = json!({ "ids": ["a", "b"] });
    let recorded = record_case(&detail).unwrap_or_else(|e| panic!("{e}"));
    let project = project(&[flow, helper]);
    let file = parse_test_file("many.test.yaml", &recorded.file_yaml)
        .unwrap_or_else(|e| panic!("{}\n{}", lines(&e), recorded.file_yaml));
    let stubs: Vec<(Option<&str>, Option<&str>)> = file.cases[0]
        .stubs
        .iter()
        .map(|s| (s.step.as_deref(), s.card.as_deref()))
        .collect();
    assert_eq!(
        stubs,
        [
            (Some("all[0]"), Some("flow.call")),
            (Some("all[1]"), Some("flow.call")),
            (Some("first"), None)
        ]
    );
    let reports = run_file(&project, &file, None);
    assert_eq!(summary(&reports), [format!("{}: ok", recorded.case_name)]);
}

#[test]
fn recorded_cases_append_to_an_existing_file() {
    let detail = run_detail_of(
        PROBE,
        &[],
        "flow: probe\ncases:\n  - name: s\n    input: { path: users }\n    stubs: [{ step: call, output: { status: 200 } }]\n",
        "all",
    );
    let recorded = record_case(&detail).unwrap_or_else(|e| panic!("{e}"));
    let existing = "# My tests\nflow: probe\ncases:\n- name: first   # kept\n  stubs: [{ step: call, output: { status: 1 } }]\n";
    let appended =
        append_case("probe.test.yaml", existing, &recorded).unwrap_or_else(|e| panic!("{e}"));
    assert!(appended.starts_with(existing), "{appended}");
    let file = parse_test_file("probe.test.yaml", &appended)
        .unwrap_or_else(|e| panic!("{}\n{appended}", lines(&e)));
    assert_eq!(file.cases.len(), 2);
    assert_eq!(file.cases[1].name, recorded.case_name);
    // Twice is refused, and so are files that do not end with their cases.
    assert!(matches!(
        append_case("probe.test.yaml", &appended, &recorded),
        Err(RecordError::CannotAppend { .. })
    ));
    let cases_first = "cases:\n  - name: a\nnow: 2026-01-01T00:00:00Z\nflow: probe\n";
    assert!(append_case("p.test.yaml", cases_first, &recorded).is_err());
    let other_flow = "flow: other\ncases:\n  - name: a\n";
    assert!(append_case("p.test.yaml", other_flow, &recorded).is_err());
    let inline = "flow: probe\ncases: [{ name: a }]\n";
    assert!(append_case("p.test.yaml", inline, &recorded).is_err());
}

#[test]
fn yaml_writer_round_trips_through_the_parser() {
    let values = [
        json!({"a": 1, "b": "text", "c": null, "d": true, "e": [], "f": {}}),
        json!({"tricky": ["yes", "no", "on", "null", "123", "1e3", "-x", "a: b", "#c", "x #y", "", " pad", "multi\nline", "quote\"s", "émoji 🎉", "@at", "*star", "&amp", "!bang", "%pct", "`tick`", "[x]", "{y}", "a,b", "~"]}),
        json!({"nested": {"list": [{"a": 1, "b": [1, 2, {"c": "d"}]}, [1, [2, [3]]], "plain"], "long": "x".repeat(100)}}),
        json!({"weird key: #1": 1, "": 2, "x-y.z": 3}),
        json!([{"only": "item"}, [], {}, 1.5, -2]),
    ];
    for value in values {
        let text = to_yaml(&value, 0);
        let parsed = flowfile::parse_document("x.yaml", &text)
            .unwrap_or_else(|e| panic!("{}\n{text}", lines(&e)));
        assert_eq!(parsed.value, value, "\n{text}");
    }
}

#[test]
fn streamed_records_each_run_their_helper_flow_and_resume_from_every_checkpoint() {
    const STREAM: &str = r#"
name: stream-users
steps:
  - id: each
    card: okta.find_users
    with:
      filter: 'status eq "ACTIVE"'
      stream: { flow: touch-user, state: { batch: nightly }, concurrency: 2 }
  - card: flow.return
    with: { body: "{{ steps.each }}" }
"#;
    const TOUCH: &str = r#"
name: touch-user
trigger: { helper: { inputs: { record: object, state: object } } }
steps:
  - card: flow.return
    with: { body: "{{ input.state.batch }} {{ input.record.login }}" }
"#;
    check_run(
        &[STREAM, TOUCH],
        r#"
flow: stream-users
cases:
  - name: two pages
    stubs:
      - card: okta.find_users
        sequence:
          - output: { records: [{ login: a }, { login: b }, { login: c }], next: "p2" }
          - output: { records: [{ login: d }], next: null }
    expect:
      calls:
        - { card: flow.call, count: 4 }
        - { card: okta.find_users, count: 2 }
"#,
        &["two pages: ok"],
    );
}

#[test]
fn a_step_whose_checkpoint_cannot_be_read_back_fails_the_case() {
    // `json.parse` accepts a value nested 126 deep; inside a checkpoint it is nested deeper than
    // the 128 levels a JSON reader takes, so a worker could write this run's checkpoint and never
    // resume it. The case fails only because every step's checkpoint is written as text and the
    // run goes on from what that text reads back as.
    let deep = format!("{}1{}", "[".repeat(126), "]".repeat(126));
    let flow = format!(
        r#"
name: deep
steps:
  - id: parsed
    card: json.parse
    with: {{ text: "{deep}" }}
  - id: call
    card: http.request
    with: {{ url: "https://api.example.com/health" }}
  - card: flow.return
    with: {{ body: done }}
"#
    );
    let reports = run(
        &project(&[&flow]),
        r#"
flow: deep
cases:
  - name: deep value
    stubs:
      - { card: http.request, output: { status: 200 } }
"#,
    );
    let lines = summary(&reports);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "deep value: error the checkpoint of `deep` cannot be read back: recursion limit exceeded"
        ),
        "{lines:?}"
    );
    // The same value one level shallower than the limit resumes.
    let shallow = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let reports = run(
        &project(&[&flow.replace(&deep, &shallow)]),
        r#"
flow: deep
cases:
  - name: shallow value
    stubs:
      - { card: http.request, output: { status: 200 } }
"#,
    );
    assert_eq!(summary(&reports), ["shallow value: ok"]);
}
