//! Flow files and project configs as users write them, and what they read back: the model, or every
//! problem with file, line, column and field path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::{
    ApiAuth, ApiTrigger, DelegatedInput, DelegatedTrigger, EventTrigger, HelperTrigger,
    HistoryMode, HmacAuth, InputType, LoopBody, LoopStep, OnError, Respond, RetryOn, RetryPolicy,
    ScheduleTrigger, SecretRef, SignatureEncoding, Step, StepKind, Trigger,
};

/// Parses `source` as `flow.yaml` and compares every diagnostic (as displayed) with `expected`.
/// An empty `expected` means the flow must load.
#[track_caller]
fn check(source: &str, expected: &[&str]) {
    check_file("flow.yaml", source, expected);
}

#[track_caller]
fn check_file(label: &str, source: &str, expected: &[&str]) {
    let got: Vec<String> = match parse_flow(label, source) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(got, expected, "\n--- source ---\n{source}");
}

#[track_caller]
fn flow(source: &str) -> Flow {
    parse_flow("flow.yaml", source).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("expected a valid flow, got:\n{}", lines.join("\n"))
    })
}

fn return_step(key: &str, line: u32, column: u32) -> Step {
    Step {
        key: key.into(),
        has_id: false,
        kind: StepKind::Card {
            card: "flow.return".into(),
            with: serde_json::json!({}),
        },
        guard: None,
        retry: None,
        timeout: None,
        on_error: OnError::Fail,
        location: Location { line, column },
    }
}

const STEPS: &str = "steps:\n  - card: flow.return\n";

#[test]
fn decodes_every_trigger_kind_with_defaults() {
    let check_trigger = |trigger_yaml: &str, expected: Trigger| {
        let source = format!("name: t\ntrigger:\n{trigger_yaml}{STEPS}");
        assert_eq!(flow(&source).trigger, expected, "{trigger_yaml}");
    };
    check_trigger(
        "  schedule: { cron: \"0 8 * * ? *\", timezone: Europe/Paris }\n",
        Trigger::Schedule(ScheduleTrigger {
            expression: "cron(0 8 * * ? *)".into(),
            timezone: Some("Europe/Paris".into()),
        }),
    );
    check_trigger(
        "  schedule: { rate: 15 minutes }\n",
        Trigger::Schedule(ScheduleTrigger {
            expression: "rate(15 minutes)".into(),
            timezone: None,
        }),
    );
    check_trigger(
        "  schedule: { at: \"at(2030-01-01T09:00:00)\" }\n",
        Trigger::Schedule(ScheduleTrigger {
            expression: "at(2030-01-01T09:00:00)".into(),
            timezone: None,
        }),
    );
    check_trigger(
        "  event:\n    okta: [group.user_membership.add]\n    filter: \"{{ event.target | length > 0 }}\"\n",
        Trigger::Event(EventTrigger {
            okta: vec!["group.user_membership.add".into()],
            filter: Some("{{ event.target | length > 0 }}".into()),
        }),
    );
    check_trigger(
        "  api:\n    auth: token\n    token: \"env:GREET_TOKEN\"\n    respond: sync\n",
        Trigger::Api(ApiTrigger {
            auth: ApiAuth::Token {
                token: Some(SecretRef::Env("GREET_TOKEN".into())),
            },
            respond: Respond::Sync,
            timeout: Duration::from_secs(30),
        }),
    );
    check_trigger(
        "  api:\n    auth: hmac\n    hmac: { header: typeform-signature, prefix: \"sha256=\", encoding: base64, secret: \"env:TYPEFORM_SECRET\",\n            timestamp_header: null, tolerance: 5m }\n",
        Trigger::Api(ApiTrigger {
            auth: ApiAuth::Hmac(HmacAuth {
                header: "typeform-signature".into(),
                prefix: "sha256=".into(),
                encoding: SignatureEncoding::Base64,
                secret: SecretRef::Env("TYPEFORM_SECRET".into()),
                timestamp_header: None,
                tolerance: Duration::from_secs(300),
            }),
            respond: Respond::Async,
            timeout: Duration::from_secs(30),
        }),
    );
    check_trigger(
        "  api: { auth: hmac, hmac: { header: x-sig, secret: \"file:./s\", timestamp_header: x-ts }, timeout: 10s }\n",
        Trigger::Api(ApiTrigger {
            auth: ApiAuth::Hmac(HmacAuth {
                header: "x-sig".into(),
                prefix: String::new(),
                encoding: SignatureEncoding::Hex,
                secret: SecretRef::File("./s".into()),
                timestamp_header: Some("x-ts".into()),
                tolerance: Duration::from_secs(300),
            }),
            respond: Respond::Async,
            timeout: Duration::from_secs(10),
        }),
    );
    check_trigger(
        "  api: { auth: jwt, jwt: { issuer: https://example.okta.com/oauth2/default, audience: api://idflow } }\n",
        Trigger::Api(ApiTrigger {
            auth: ApiAuth::Jwt {
                issuer: "https://example.okta.com/oauth2/default".into(),
                audience: "api://idflow".into(),
            },
            respond: Respond::Async,
            timeout: Duration::from_secs(30),
        }),
    );
    check_trigger(
        "  api: { auth: public }\n",
        Trigger::Api(ApiTrigger {
            auth: ApiAuth::Public,
            respond: Respond::Async,
            timeout: Duration::from_secs(30),
        }),
    );
    check_trigger(
        "  helper: { inputs: { user: object, count: { type: number } } }\n",
        Trigger::Helper(HelperTrigger {
            inputs: BTreeMap::from([
                ("count".into(), InputType::Number),
                ("user".into(), InputType::Object),
            ]),
        }),
    );
    check_trigger(
        "  helper:\n",
        Trigger::Helper(HelperTrigger {
            inputs: BTreeMap::new(),
        }),
    );
    check_trigger(
        "  delegated:\n    inputs:\n      email: text\n      accessRequestId: { type: text, required: false, description: the request }\n    callers: [ops-bot]\n    report_to_request: true\n",
        Trigger::Delegated(DelegatedTrigger {
            inputs: BTreeMap::from([
                (
                    "accessRequestId".into(),
                    DelegatedInput {
                        kind: InputType::Text,
                        required: false,
                        description: Some("the request".into()),
                    },
                ),
                (
                    "email".into(),
                    DelegatedInput {
                        kind: InputType::Text,
                        required: true,
                        description: None,
                    },
                ),
            ]),
            callers: vec!["ops-bot".into()],
            report_to_request: true,
        }),
    );
    check_trigger("  manual\n", Trigger::Manual);
    assert_eq!(flow(&format!("name: t\n{STEPS}")).trigger, Trigger::Manual);
}

#[test]
fn decodes_a_whole_flow() {
    let source = "\
name: offboard
description: Deactivates a user
history: errors
timeout: 1h
steps:
  - card: flow.return
    with: { status: 200 }
    retry: { max: 3, backoff: 5s, on: [429, 5xx, timeout] }
    timeout: 20s
    on_error: continue
";
    let got = flow(source);
    assert_eq!(got.name, "offboard");
    assert_eq!(got.description.as_deref(), Some("Deactivates a user"));
    assert_eq!(got.history, HistoryMode::Errors);
    assert_eq!(got.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(got.version, version_of(source));
    assert_eq!(
        got.steps,
        vec![Step {
            kind: StepKind::Card {
                card: "flow.return".into(),
                with: serde_json::json!({ "status": 200 })
            },
            retry: Some(RetryPolicy {
                max: 3,
                backoff: Duration::from_secs(5),
                factor: 2.0,
                on: vec![RetryOn::Status(429), RetryOn::Class(5), RetryOn::Timeout],
            }),
            timeout: Some(Duration::from_secs(20)),
            on_error: OnError::Continue,
            ..return_step("s0", 6, 5)
        }]
    );
}

#[test]
fn decodes_control_steps_with_generated_keys() {
    let source = "\
name: control
steps:
  - id: first
    card: flow.return
  - if: \"{{ input.active }}\"
    then:
      - card: flow.return
    else:
      - card: flow.return
  - continue_if: \"{{ input.go }}\"
  - for_each: \"{{ input.users }}\"
    as: user
    steps:
      - card: flow.return
  - map: \"{{ input.users }}\"
    flow: helper-one
    with: { user: \"{{ item }}\" }
  - try:
      - card: flow.return
    catch:
      - card: flow.return
        on_error:
          - card: flow.return
  - wait: 10m
  - wait_until: \"{{ input.endDate }}\"
";
    let got = flow(source);
    let kinds: Vec<(String, bool)> = got
        .steps
        .iter()
        .map(|s| (s.key.clone(), s.has_id))
        .collect();
    assert_eq!(
        kinds,
        [
            ("first", true),
            ("s1", false),
            ("s2", false),
            ("s3", false),
            ("s4", false),
            ("s5", false),
            ("s6", false),
            ("s7", false)
        ]
        .map(|(k, h)| (k.to_owned(), h))
    );
    assert_eq!(
        got.steps[1].kind,
        StepKind::If {
            condition: "{{ input.active }}".into(),
            then: vec![return_step("s1.then.0", 7, 9)],
            otherwise: vec![return_step("s1.else.0", 9, 9)],
        }
    );
    assert_eq!(
        got.steps[2].kind,
        StepKind::ContinueIf {
            condition: "{{ input.go }}".into()
        }
    );
    assert_eq!(
        got.steps[3].kind,
        StepKind::Loop(LoopStep {
            collect: false,
            items: "{{ input.users }}".into(),
            var: "user".into(),
            concurrency: 1,
            body: LoopBody::Steps(vec![return_step("s3.steps.0", 14, 9)]),
        })
    );
    assert_eq!(
        got.steps[4].kind,
        StepKind::Loop(LoopStep {
            collect: true,
            items: "{{ input.users }}".into(),
            var: "item".into(),
            concurrency: 10,
            body: LoopBody::Flow {
                flow: "helper-one".into(),
                with: Some(serde_json::json!({ "user": "{{ item }}" }))
            },
        })
    );
    assert_eq!(
        got.steps[5].kind,
        StepKind::Try {
            steps: vec![return_step("s5.try.0", 19, 9)],
            catch: vec![Step {
                on_error: OnError::Steps(vec![return_step("s5.catch.0.on_error.0", 23, 13)]),
                ..return_step("s5.catch.0", 21, 9)
            }],
        }
    );
    assert_eq!(
        got.steps[6].kind,
        StepKind::Wait {
            duration: Duration::from_secs(600)
        }
    );
    assert_eq!(
        got.steps[7].kind,
        StepKind::WaitUntil {
            until: "{{ input.endDate }}".into()
        }
    );
}

#[test]
fn reports_top_level_problems() {
    check(
        "",
        &["flow.yaml:1:1: the file is empty; a flow needs at least `name:` and `steps:`"],
    );
    check("- a\n", &["flow.yaml:1:1: expected a mapping, got a list"]);
    check(
        "description: x\n",
        &[
            "flow.yaml:1:1: missing required key `name` (a flow name such as `badge-access`)",
            "flow.yaml:1:1: missing required key `steps` (a list of steps)",
        ],
    );
    check(
        &format!("name: Badge_Access\n{STEPS}"),
        &[
            "flow.yaml:1:7: name: invalid flow name `Badge_Access`: use lowercase letters, digits and `-` only",
        ],
    );
    check(
        &format!("name: t\nstep: []\n{STEPS}"),
        &[
            "flow.yaml:2:1: step: unknown key `step`, expected one of name, description, trigger, history, timeout, limits, steps; did you mean `steps`?",
        ],
    );
    check(
        &format!("name: t\nhistory: some\n{STEPS}"),
        &["flow.yaml:2:10: history: expected one of all, errors, none, got `some`"],
    );
    check(
        &format!("name: t\nhistory: error\n{STEPS}"),
        &[
            "flow.yaml:2:10: history: expected one of all, errors, none, got `error`; did you mean `errors`?",
        ],
    );
    check(
        &format!("name: t\ntimeout: soon\n{STEPS}"),
        &[
            "flow.yaml:2:10: timeout: expected a duration such as `30s`, `10m` or `1h30m`, got `soon`",
        ],
    );
    check(
        "name: t\nsteps: []\n",
        &["flow.yaml:2:8: steps: expected at least one step"],
    );
    check(
        "name:\nsteps:\n",
        &[
            "flow.yaml:2:1: name: expected a flow name such as `badge-access`, got nothing",
            "flow.yaml:3:1: steps: expected a list of steps, got nothing",
        ],
    );
}

#[test]
fn reports_trigger_problems() {
    let with_trigger = |trigger: &str| format!("name: t\ntrigger:\n{trigger}{STEPS}");
    check(
        &with_trigger("  api: { auth: tokn }\n"),
        &[
            "flow.yaml:3:16: trigger.api.auth: expected one of token, hmac, jwt, public, got `tokn`; did you mean `token`?",
        ],
    );
    check(
        &with_trigger("  api: { respond: async }\n"),
        &[
            "flow.yaml:3:8: trigger.api: missing required key `auth` (one of token, hmac, jwt, public)",
        ],
    );
    check(
        &with_trigger("  api: { auth: token, token: hunter2 }\n"),
        &[
            "flow.yaml:3:30: trigger.api.token: expected a secret reference such as `env:NAME`, `file:./path` or `aws-secretsmanager:name`, got `hun…`",
        ],
    );
    check(
        &with_trigger("  api: { auth: public, hmac: { header: x } }\n"),
        &[
            "flow.yaml:3:24: trigger.api.hmac: `hmac` applies to `auth: hmac`, and this endpoint has `auth: public`",
        ],
    );
    check(
        &with_trigger("  api: { auth: hmac, hmac: { header: \"x y\", encoding: b64 } }\n"),
        &[
            "flow.yaml:3:28: trigger.api.hmac: missing required key `secret` (a secret reference such as `env:WEBHOOK_SECRET`)",
            "flow.yaml:3:38: trigger.api.hmac.header: `x y` is not a header name: use letters, digits and `-`",
            "flow.yaml:3:55: trigger.api.hmac.encoding: expected one of hex, base64, got `b64`",
        ],
    );
    check(
        &with_trigger("  api: { auth: jwt, jwt: { issuer: example.com } }\n"),
        &[
            "flow.yaml:3:26: trigger.api.jwt: missing required key `audience` (the expected `aud` claim)",
            "flow.yaml:3:36: trigger.api.jwt.issuer: expected an issuer URL such as https://example.okta.com/oauth2/default, got `example.com`",
        ],
    );
    check(
        &with_trigger("  api: { auth: public, timeout: 1h }\n"),
        &["flow.yaml:3:33: trigger.api.timeout: expected a duration from 1s to 15m, got `1h`"],
    );
    check(
        &with_trigger("  schedule: { cron: \"0 8 * * ? *\", rate: 5 minutes }\n"),
        &[
            "flow.yaml:3:36: trigger.schedule.rate: use one of `cron`, `rate` or `at`, not both `cron` and `rate`",
        ],
    );
    check(
        &with_trigger("  schedule: { timezone: Europe/Pari }\n"),
        &[
            "flow.yaml:3:13: trigger.schedule: missing the schedule: one of `cron`, `rate` or `at`",
            "flow.yaml:3:25: trigger.schedule.timezone: unknown time zone `Europe/Pari`, expected an IANA name such as Europe/Paris; did you mean `Europe/Paris`?",
        ],
    );
    check(
        &with_trigger("  event: { okta: [], filter: yes }\n"),
        &[
            "flow.yaml:3:18: trigger.event.okta: expected at least one System Log event type",
            "flow.yaml:3:30: trigger.event.filter: expected a template such as \"{{ event.outcome.result == 'SUCCESS' }}\", got `yes`",
        ],
    );
    check(
        &with_trigger("  event: { okta: [user created] }\n"),
        &[
            "flow.yaml:3:19: trigger.event.okta[0]: `user created` is not a System Log event type such as `user.lifecycle.create`",
        ],
    );
    check(
        &with_trigger("  schedule: { rate: 1 hour }\n  api: { auth: public }\n"),
        &["flow.yaml:4:3: trigger.api: a flow has one trigger, this one has `schedule` and `api`"],
    );
    // The kinds a flow file may write are every kind of the registry but manual, in its order.
    let written: Vec<&str> = Trigger::KINDS
        .iter()
        .skip(1)
        .map(|kind| kind.name)
        .collect();
    assert!(written.starts_with(&["schedule", "event", "api", "helper", "delegated"]));
    let unknown = format!(
        "flow.yaml:3:3: trigger.nosuchkind: unknown key `nosuchkind`, expected one of {}",
        written.join(", ")
    );
    check(&with_trigger("  nosuchkind: {}\n"), &[unknown.as_str()]);
    check(
        &with_trigger(
            "  delegated: { inputs: { user: object, when: datetim }, callers: [], report_to_request: true }\n",
        ),
        &[
            "flow.yaml:3:32: trigger.delegated.inputs.user: delegated inputs take scalar types only (text, number, datetime, boolean), got `object`",
            "flow.yaml:3:46: trigger.delegated.inputs.when: expected one of text, number, datetime, boolean, got `datetim`; did you mean `datetime`?",
            "flow.yaml:3:66: trigger.delegated.callers: expected at least one caller",
        ],
    );
    check(
        &with_trigger("  delegated: { callers: [bot], report_to_request: true }\n"),
        &[
            "flow.yaml:3:51: trigger.delegated.report_to_request: `report_to_request` posts to the request named by the `accessRequestId` input; declare it under `inputs`",
        ],
    );
}

#[test]
fn reports_step_problems() {
    let with_steps = |steps: &str| format!("name: t\nsteps:\n{steps}");
    check(
        &with_steps("  - card: flow.retrun\n"),
        &["flow.yaml:3:11: steps[0].card: unknown card `flow.retrun`; did you mean `flow.return`?"],
    );
    check(
        &with_steps("  - card: okta.read_users\n    with: { user: x }\n"),
        &[
            "flow.yaml:3:11: steps[0].card: unknown card `okta.read_users`; did you mean `okta.read_user`?",
        ],
    );
    check(
        &with_steps("  - card: flow.fail\n    with: { mesage: x }\n"),
        &[
            "flow.yaml:4:11: steps[0].with: card `flow.fail` requires `message` (why the run failed)",
            "flow.yaml:4:13: steps[0].with.mesage: card `flow.fail` has no field `mesage`; its fields are message, code; did you mean `message`?",
        ],
    );
    check(
        &with_steps("  - card: flow.return\n    with: { status: 700, headers: \"none\" }\n"),
        &[
            "flow.yaml:4:21: steps[0].with.status: expected an HTTP status from 100 to 599, got the number 700",
            "flow.yaml:4:35: steps[0].with.headers: expected a mapping, got `none`",
        ],
    );
    check(
        &with_steps(
            "  - card: flow.return\n    with: { status: \"{{ input.status }}\", headers: \"{{ input.h }}\" }\n",
        ),
        &[],
    );
    check(
        &with_steps("  - card: flow.fail\n    with: { message: 42, code: true }\n"),
        &[],
    );
    check(
        &with_steps("  - card: flow.return\n    with: { status: 201.0 }\n"),
        &[],
    );
    check(
        &with_steps("  - card: flow.fail\n    with: { message: [42] }\n"),
        &["flow.yaml:4:22: steps[0].with.message: expected text, got a list"],
    );
    check(
        &with_steps("  - card: flow.call\n    with: { flow: Helper }\n"),
        &[
            "flow.yaml:4:19: steps[0].with.flow: invalid flow name `Helper`: use lowercase letters, digits and `-` only",
        ],
    );
    check(
        &with_steps("  - card: flow.return\n    for_each: \"{{ x }}\"\n"),
        &[
            "flow.yaml:4:5: steps[0].for_each: a step does one thing, and this one has both `card` and `for_each`; split it into two steps",
        ],
    );
    check(
        &with_steps("  - with: {}\n"),
        &[
            "flow.yaml:3:5: steps[0]: a step needs one of card, if/then, continue_if, for_each, map, try, wait, wait_until",
        ],
    );
    check(
        &with_steps("  - if: \"{{ x }}\"\n    card: flow.return\n  - if: \"{{ x }}\"\n"),
        &[
            "flow.yaml:5:5: steps[1]: an `if:` step needs `then:` (and optionally `else:`); to skip a single card, put `if:` beside `card:`",
        ],
    );
    check(
        &with_steps("  - wait: 10m\n    if: \"{{ x }}\"\n    retry: { max: 2 }\n"),
        &[
            "flow.yaml:4:5: steps[0].if: `if:` without `then:` guards card steps only; wrap this step as `if:` + `then: [ ... ]`",
            "flow.yaml:5:5: steps[0].retry: `retry` does not apply to a `wait` step",
        ],
    );
    check(
        &with_steps("  - wait: 31d\n  - wait: 0s\n"),
        &[
            "flow.yaml:3:11: steps[0].wait: expected a duration from 1s to 30d, got `31d`",
            "flow.yaml:4:11: steps[1].wait: expected a duration from 1s to 30d, got `0s`",
        ],
    );
    check(
        &with_steps(
            "  - card: flow.return\n    retry: { max: 11, factor: 0.5, on: [200, 6xx, timeot] }\n",
        ),
        &[
            "flow.yaml:4:19: steps[0].retry.max: expected a whole number from 1 to 10, got the number 11",
            "flow.yaml:4:31: steps[0].retry.factor: expected a number from 1 to 10, got the number 0.5",
            "flow.yaml:4:41: steps[0].retry.on[0]: expected an error status from 400 to 599, got 200",
            "flow.yaml:4:46: steps[0].retry.on[1]: expected a status such as 429, or one of 4xx, 5xx, timeout, network, any, got `6xx`; did you mean `4xx`?",
            "flow.yaml:4:51: steps[0].retry.on[2]: expected a status such as 429, or one of 4xx, 5xx, timeout, network, any, got `timeot`; did you mean `timeout`?",
        ],
    );
    check(
        &with_steps("  - card: flow.return\n    on_error: ignore\n"),
        &["flow.yaml:4:15: steps[0].on_error: expected one of fail, continue, got `ignore`"],
    );
    check(
        &with_steps("  - for_each: \"{{ x }}\"\n    as: 1st\n    concurrency: 0\n"),
        &[
            "flow.yaml:3:5: steps[0]: a `for_each` step needs `steps:` (inline) or `flow:` (a helper flow run per item)",
            "flow.yaml:4:9: steps[0].as: invalid loop variable `1st`: use letters, digits and `_` (not starting with a digit, at most 64 characters)",
            "flow.yaml:5:18: steps[0].concurrency: expected a whole number from 1 to 100, got the number 0",
        ],
    );
    check(
        &with_steps("  - map: items\n    steps: [ { card: flow.return } ]\n    with: {}\n"),
        &[
            "flow.yaml:3:10: steps[0].map: expected a template such as \"{{ steps.users }}\", got `items`",
            "flow.yaml:5:5: steps[0].with: `with` applies to loops over a helper `flow:`; inline steps see the item as a variable",
        ],
    );
    check(
        &with_steps("  - try: []\n"),
        &[
            "flow.yaml:3:5: steps[0]: missing required key `catch` (a list of steps to run when a step in `try` fails)",
            "flow.yaml:3:10: steps[0].try: expected at least one step",
        ],
    );
    check(
        &with_steps("  - card: flow.return\n    foo: 1\n"),
        &[
            "flow.yaml:4:5: steps[0].foo: unknown key `foo`, expected one of id, card, with, if, then, else, continue_if, for_each, map, as, concurrency, steps, flow, try, catch, wait, wait_until, retry, timeout, on_error",
        ],
    );
    check(
        &with_steps("  - card: flow.return\n    width: {}\n"),
        &[
            "flow.yaml:4:5: steps[0].width: unknown key `width`, expected one of id, card, with, if, then, else, continue_if, for_each, map, as, concurrency, steps, flow, try, catch, wait, wait_until, retry, timeout, on_error; did you mean `with`?",
        ],
    );
}

#[test]
fn step_ids_are_unique_across_nested_steps() {
    let source = "\
name: t
steps:
  - id: user
    card: flow.return
  - if: \"{{ x }}\"
    then:
      - id: user
        card: flow.return
      - id: s1
        card: flow.return
      - id: first-step
        card: flow.return
";
    check(
        source,
        &[
            "flow.yaml:7:13: steps[1].then[0].id: duplicate step id `user` (first at line 3); ids are unique across the whole flow",
            "flow.yaml:9:13: steps[1].then[1].id: step id `s1` is reserved for generated step keys; pick another name",
            "flow.yaml:11:13: steps[1].then[2].id: invalid step id `first-step`: use letters, digits and `_` (not starting with a digit, at most 64 characters)",
        ],
    );
}

#[test]
fn reports_every_problem_in_a_file() {
    let source = "\
name: My Flow
trigger:
  api: { auth: tokn }
history: everything
steps:
  - card: flow.retrun
  - card: flow.fail
    with: { message: [42], extra: 1 }
  - wait: forever
";
    check(
        source,
        &[
            "flow.yaml:1:7: name: invalid flow name `My Flow`: use lowercase letters, digits and `-` only",
            "flow.yaml:3:16: trigger.api.auth: expected one of token, hmac, jwt, public, got `tokn`; did you mean `token`?",
            "flow.yaml:4:10: history: expected one of all, errors, none, got `everything`",
            "flow.yaml:6:11: steps[0].card: unknown card `flow.retrun`; did you mean `flow.return`?",
            "flow.yaml:8:22: steps[1].with.message: expected text, got a list",
            "flow.yaml:8:28: steps[1].with.extra: card `flow.fail` has no field `extra`; its fields are message, code",
            "flow.yaml:9:11: steps[2].wait: expected a duration such as `30s`, `10m` or `1h30m`, got `forever`",
        ],
    );
}

#[test]
fn reports_yaml_and_json_syntax_errors_with_position() {
    check(
        "name: t\nsteps:\n  - card: [flow.return\n",
        &["flow.yaml:4:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"],
    );
    check(
        "name: t\n  steps: 1\n",
        &["flow.yaml:2:8: invalid YAML: mapping values are not allowed in this context"],
    );
    check(
        "name: t\nname: u\nsteps: []\n",
        &["flow.yaml:2:1: name: duplicate key `name` (first at line 1)"],
    );
    check(
        "name: t\nsteps:\n  - card: flow.fail\n    with:\n      message: {{ input.why }}\n",
        &[
            "flow.yaml:5:17: steps[0].with.message: a key must be text; a value that starts with `{{` is read as a mapping, so quote templates: \"{{ ... }}\"",
        ],
    );
    check_file(
        "flow.json",
        "{\n  \"name\": \"t\",\n  \"steps\": [\n    {\"card\": \"flow.return\",}\n  ]\n}\n",
        &["flow.json:4:28: invalid JSON: trailing comma"],
    );
    check_file(
        "flow.json",
        "{\"name\": \"t\", \"name\": \"u\", \"steps\": []}",
        &["flow.json:1:15: name: duplicate key `name` (first at line 1)"],
    );
    check_file(
        "flow.json",
        "{\n  \"name\": \"t\",\n  \"steps\": [{\"card\": \"flow.retrun\"}]\n}\n",
        &["flow.json:3:22: steps[0].card: unknown card `flow.retrun`; did you mean `flow.return`?"],
    );
    // Minified JSON keeps exact positions too.
    check_file(
        "flow.json",
        r#"{"name":"t","steps":[{"card":"flow.retrun","with":{"a":"\u00e9\n"}}]}"#,
        &["flow.json:1:30: steps[0].card: unknown card `flow.retrun`; did you mean `flow.return`?"],
    );
}

#[test]
fn json_flow_equals_the_same_yaml_flow() {
    let yaml = "\
name: greet
trigger:
  api: { auth: token, token: \"env:GREET_TOKEN\", respond: sync }
steps:
  - id: reply
    card: flow.return
    with:
      status: 200
      body: { greeting: \"Hello {{ input.query.name }}\", tags: [a, 1, true, null] }
";
    let json = r#"{
	"name": "greet",
	"trigger": {"api": {"auth": "token", "token": "env:GREET_TOKEN", "respond": "sync"}},
	"steps": [
		{"id": "reply", "card": "flow.return",
		 "with": {"status": 200, "body": {"greeting": "Hello {{ input.query.name }}", "tags": ["a", 1, true, null]}}}
	]
}"#;
    let from_yaml = flow(yaml);
    let from_json = parse_flow("greet.json", json).expect("json flow");
    // Positions and versions differ with the text; everything else is the same flow.
    let strip = |mut flow: Flow| {
        flow.version.clear();
        for step in &mut flow.steps {
            step.location = Location::default();
        }
        flow
    };
    assert_eq!(strip(from_json), strip(from_yaml));
}

/// The example of FLOW-FORMAT.md. Until the registry has its cards it fails with exactly the
/// unknown-card diagnostics of the missing ones; once they land it must load.
#[test]
fn format_example_fails_only_on_cards_not_yet_registered() {
    let source = r#"# flows/badge-access.yaml
name: badge-access                 # unique id: lowercase letters, digits, '-'
description: Email the badge team once a building access request is approved
trigger:                           # exactly one trigger (see below); omitted = manual only
  delegated:
    inputs:
      requesterEmail: text         # text | number | datetime | boolean (scalars only)
      buildingRequested: text
      businessJustification: text
      assigneeEmail: text
      endDate: datetime
      accessRequestId: { type: text, required: false }
    callers: [okta-access-requests] # principals allowed to list and run it
history: all                       # all (every step's input/output) | errors | none (metadata only)
steps:
  - id: requester
    card: okta.read_user
    with:
      user: "{{ input.requesterEmail }}"
  - id: body
    card: text.compose
    with:
      text: |
        {{ steps.requester.profile.firstName }} {{ steps.requester.profile.lastName }} needs access to
        {{ input.buildingRequested }} until {{ input.endDate }}.
        Justification: {{ input.businessJustification }}
  - card: email.send
    with:
      to: "{{ input.assigneeEmail }}"
      subject: "Badge access: {{ input.buildingRequested }}"
      body: "{{ steps.body }}"
"#;
    let expected: Vec<String> = [
        ("okta.read_user", 17),
        ("text.compose", 21),
        ("email.send", 27),
    ]
    .iter()
    .filter(|(card, _)| crate::cards::lookup(card).is_none())
    .map(|(card, line)| {
        let index = match *line {
            17 => 0,
            21 => 1,
            _ => 2,
        };
        format!("badge-access.yaml:{line}:11: steps[{index}].card: unknown card `{card}`")
    })
    .collect();
    let got: Vec<String> = match parse_flow("badge-access.yaml", source) {
        Ok(flow) => {
            assert_eq!(flow.name, "badge-access");
            Vec::new()
        }
        Err(diagnostics) => diagnostics
            .iter()
            .map(|d| {
                // A suggestion may appear as the registry grows; the diagnostic itself must not change.
                let text = d.to_string();
                text.split("; did you mean")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect(),
    };
    assert_eq!(got, expected);
}

/// Deterministic mutations of a valid file: truncations, deletions, duplications and swapped
/// characters. None may panic; each must load or report at least one diagnostic.
#[test]
fn never_panics_on_mutated_files() {
    let valid = "\
name: mutant
trigger:
  api: { auth: hmac, hmac: { header: x-sig, secret: \"env:S\", timestamp_header: x-ts } }
steps:
  - id: a
    card: flow.return
    with: { status: 201, body: [1, \"{{ input.body }}\", { k: v }] }
    retry: { max: 3, on: [429, 5xx] }
  - if: \"{{ steps.a }}\"
    then:
      - for_each: \"{{ input.items }}\"
        steps: [ { wait: 1s } ]
    else: [ { continue_if: \"{{ true }}\" } ]
  - try: [ { card: flow.call, with: { flow: other } } ]
    catch: [ { card: flow.fail, with: { message: no } } ]
";
    let chars: Vec<char> = valid.chars().collect();
    let specials = [
        ':', '-', '{', '}', '[', ']', '"', '\'', '&', '*', '!', '|', '>', '\t', '\n', ' ', '#',
        '%', '@', '`',
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |bound: usize| {
        // xorshift: deterministic, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % bound as u64).unwrap_or(0)
    };
    for round in 0..200 {
        let mut mutated = chars.clone();
        match round % 5 {
            0 => mutated.truncate(next(chars.len())),
            1 => {
                let at = next(mutated.len());
                let len = next(20).min(mutated.len() - at);
                mutated.drain(at..at + len);
            }
            2 => {
                let at = next(mutated.len());
                mutated.insert(at, specials[next(specials.len())]);
            }
            3 => {
                let a = next(mutated.len());
                let b = next(mutated.len());
                mutated.swap(a, b);
            }
            _ => {
                let at = next(mutated.len());
                let len = next(40).min(mutated.len() - at);
                let copy: Vec<char> = mutated[at..at + len].to_vec();
                let to = next(mutated.len());
                mutated.splice(to..to, copy);
            }
        }
        let text: String = mutated.into_iter().collect();
        for label in ["m.yaml", "m.json"] {
            if let Err(diagnostics) = parse_flow(label, &text) {
                assert!(
                    !diagnostics.is_empty(),
                    "round {round}: empty error list for\n{text}"
                );
            }
        }
        let _ = parse_project("idflow.yaml", &text);
        let _ = parse_document("m.yaml", &text);
    }
}

#[test]
fn parses_the_project_config() {
    let source = r#"
connections:
  okta:
    domain: https://example.okta.com
    auth: { type: private_key_jwt, client_id: 0oa123, key: "file:./secrets/okta.pem", scopes: [okta.users.manage], dpop: true }
  okta-legacy:
    domain: https://example.okta.com
    auth: { type: ssws, token: "env:OKTA_API_TOKEN" }
  slack: { token: "env:SLACK_BOT_TOKEN" }
hooks:
  okta: { secret: "env:OKTA_EVENT_HOOK_SECRET" }
callers:
  okta-access-requests: { jwt: { issuer: https://example.okta.com, audience: api://idflow, sub: 0oa456 } }
  ops-bot: { token: "env:OPS_BOT_TOKEN" }
tables:
  failed_logins:
    key: id
    columns: { id: text, user: text, at: datetime, count: number, raw: json }
admin: { token: "env:IDFLOW_ADMIN_TOKEN" }
api:
  tokens: { greet: "env:GREET_TOKEN" }
secrets:
  typeform: "aws-secretsmanager:prod/typeform"
vars:
  oktaDomain: example.okta.com
"#;
    let config = parse_project("idflow.yaml", source).expect("valid config");
    assert_eq!(config.connections.len(), 3);
    assert_eq!(
        config.connections["slack"],
        serde_json::json!({ "token": "env:SLACK_BOT_TOKEN" })
    );
    assert_eq!(
        config.okta_hook_secret,
        Some(SecretRef::Env("OKTA_EVENT_HOOK_SECRET".into()))
    );
    assert_eq!(
        config.callers.keys().collect::<Vec<_>>(),
        ["okta-access-requests", "ops-bot"]
    );
    assert_eq!(config.tables["failed_logins"]["key"], "id");
    assert_eq!(
        config.admin_token,
        Some(SecretRef::Env("IDFLOW_ADMIN_TOKEN".into()))
    );
    assert_eq!(
        config.api_tokens["greet"],
        SecretRef::Env("GREET_TOKEN".into())
    );
    assert_eq!(
        config.secrets["typeform"],
        SecretRef::AwsSecretsManager("prod/typeform".into())
    );
    assert_eq!(config.vars["oktaDomain"], "example.okta.com");
    assert_eq!(
        parse_project("idflow.yaml", ""),
        Ok(ProjectConfig::default())
    );
}

#[test]
fn reports_project_config_problems() {
    let check_project = |source: &str, expected: &[&str]| {
        let got: Vec<String> = match parse_project("idflow.yaml", source) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(got, expected, "\n{source}");
    };
    check_project(
        "conections: {}\n",
        &[
            "idflow.yaml:1:1: conections: unknown key `conections`, expected one of connections, hooks, callers, tables, admin, vars, api, secrets, jwks, egress; did you mean `connections`?",
        ],
    );
    check_project(
        "connections:\n  okta: { domain: example.okta.com, auth: { type: ssws, token: 00abcdef } }\n",
        &[
            "idflow.yaml:2:19: connections.okta.domain: expected a base URL such as https://example.okta.com, got `example.okta.com`",
            "idflow.yaml:2:64: connections.okta.auth.token: expected a secret reference such as `env:NAME`, `file:./path` or `aws-secretsmanager:name`, got `00a…`",
        ],
    );
    check_project(
        "hooks: { okta: { secret: \"vault:x\" } }\nadmin: { token: 123 }\n",
        &[
            "idflow.yaml:1:26: hooks.okta.secret: unknown secret scheme `vault:`; expected `env:`, `file:` or `aws-secretsmanager:`",
            "idflow.yaml:2:17: admin.token: expected a secret reference such as `env:NAME`, `file:./path` or `aws-secretsmanager:name`",
        ],
    );
    check_project(
        "callers:\n  a: {}\n  b: { jwt: { issuer: x }, token: \"env:T\" }\n",
        &[
            "idflow.yaml:2:6: callers.a: a caller needs `jwt: { issuer, audience }` or `token: env:NAME`",
            "idflow.yaml:3:28: callers.b.token: a caller authenticates with `jwt` or `token`, not both",
        ],
    );
    check_project(
        "jwks: { \"https://a.example\": \"http://a.example/keys\" }\ncallers:\n  c: { jwt: { issuer: x, audience: y, jwks: keys.json } }\n",
        &[
            "idflow.yaml:1:30: jwks.https://a.example: `http://a.example/keys` must use https (http only for localhost)",
            "idflow.yaml:3:45: callers.c.jwt.jwks: expected a JWKS URL (https://…) or a secret reference holding the JWKS such as `file:./jwks.json`, got `keys.json`",
        ],
    );
    check_project(
        "tables:\n  t: { key: id, columns: { name: string } }\n",
        &[
            "idflow.yaml:2:13: tables.t.key: key column `id` is not one of the columns (name)",
            "idflow.yaml:2:34: tables.t.columns.name: expected one of text, number, datetime, boolean, json, got `string`",
        ],
    );
    check_project(
        "api: { tokens: { Greet: \"env:X\" } }\nsecrets: { \"a b\": \"env:Y\" }\n",
        &[
            "idflow.yaml:1:18: api.tokens.Greet: invalid flow name `Greet`: use lowercase letters, digits and `-` only",
            "idflow.yaml:2:12: secrets.a b: invalid secret name `a b`: use letters, digits, `-`, `_` and `.`",
        ],
    );
}

/// A temporary directory filled with `files`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str, files: &[(&str, &str)]) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("idflow-flowfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (file, text) in files {
            let path = dir.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("fixture dir");
            }
            std::fs::write(path, text).expect("write fixture");
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn loads_a_directory_and_checks_across_files() {
    let dir = TempDir::new(
        "cross",
        &[
            (
                "idflow.yaml",
                "callers:\n  ops-bot: { token: \"env:OPS\" }\napi:\n  tokens: { greet: \"env:G\", gone: \"env:X\" }\n",
            ),
            (
                "a-main.yaml",
                "name: main\nsteps:\n  - card: flow.call\n    with: { flow: helpr }\n  - card: flow.call\n    with: { flow: nightly }\n  - map: \"{{ input.users }}\"\n    flow: helper\n  - card: flow.call\n    with: { flow: ghost }\n",
            ),
            (
                "b-helper.yml",
                "name: helper\ntrigger: { helper: { inputs: { user: object } } }\nsteps:\n  - card: flow.return\n",
            ),
            (
                "c-nightly.json",
                "{\"name\": \"nightly\", \"trigger\": {\"schedule\": {\"rate\": \"1 day\"}}, \"steps\": [{\"card\": \"flow.return\"}]}",
            ),
            (
                "d-dup.yaml",
                "name: helper\nsteps:\n  - card: flow.return\n",
            ),
            (
                "e-delegated.yaml",
                "name: request\ntrigger:\n  delegated: { callers: [ops-bot, opsbot] }\nsteps:\n  - card: flow.return\n",
            ),
            (
                "f-api.yaml",
                "name: greet\ntrigger: { api: { auth: token } }\nsteps:\n  - card: flow.return\n",
            ),
            (
                "g-api.yaml",
                "name: other-api\ntrigger: { api: { auth: token } }\nsteps:\n  - card: flow.return\n",
            ),
            ("h-broken.yaml", "name: broken\nsteps: [\n"),
            ("main.test.yaml", "not: a flow\n"),
            ("notes.txt", "ignored\n"),
            (".hidden.yaml", "ignored\n"),
        ],
    );
    let project = load_dir(&dir.0);
    let paths: Vec<&str> = project.flows.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "a-main.yaml",
            "b-helper.yml",
            "c-nightly.json",
            "d-dup.yaml",
            "e-delegated.yaml",
            "f-api.yaml",
            "g-api.yaml",
            "h-broken.yaml",
        ]
    );
    let failed: Vec<&str> = project
        .flows
        .iter()
        .filter(|f| f.result.is_err())
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(failed, ["d-dup.yaml", "h-broken.yaml"]);
    let duplicate: Vec<String> = project.flows[3]
        .result
        .clone()
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        duplicate,
        [
            "d-dup.yaml:1:7: name: flow name `helper` is already used by b-helper.yml; flow names are unique in a directory"
        ]
    );
    let errors: Vec<String> = project.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "a-main.yaml:4:19: steps[0].with.flow: unknown flow `helpr`; did you mean `helper`?",
            "a-main.yaml:6:19: steps[1].with.flow: flow `nightly` (c-nightly.json) has a `schedule` trigger; a flow run by another flow needs a `helper` trigger or none",
            "a-main.yaml:10:19: steps[3].with.flow: unknown flow `ghost` (unless it is in h-broken.yaml, which failed to load)",
            "e-delegated.yaml:3:35: trigger.delegated.callers[1]: unknown caller `opsbot`; declare it under `callers:` in idflow.yaml; did you mean `ops-bot`?",
            "g-api.yaml:2:25: trigger.api.auth: `auth: token` without `token:` takes its token from `api.tokens.other-api` in idflow.yaml, which is missing",
            "idflow.yaml:4:29: api.tokens.gone: api token for unknown flow `gone`",
        ]
    );
    assert_eq!(project.all_diagnostics().len(), errors.len() + 2);
    assert!(!project.is_valid());
    assert_eq!(project.config.api_tokens.len(), 2);
    assert_eq!(
        project.flows[1].source,
        "name: helper\ntrigger: { helper: { inputs: { user: object } } }\nsteps:\n  - card: flow.return\n"
    );
}

#[test]
fn loads_a_clean_directory_without_project_config() {
    let dir = TempDir::new(
        "clean",
        &[("one.yaml", "name: one\nsteps:\n  - card: flow.return\n")],
    );
    let project = load_dir(&dir.0);
    assert!(project.is_valid(), "{:?}", project.all_diagnostics());
    assert_eq!(project.config, ProjectConfig::default());
    assert_eq!(
        project
            .valid_flows()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["one"]
    );

    let missing = load_dir(&dir.0.join("nope"));
    assert_eq!(missing.errors.len(), 1);
    assert!(
        missing.errors[0]
            .message
            .starts_with("cannot read the file"),
        "{:?}",
        missing.errors
    );

    let single = load_file(&dir.0.join("one.yaml"));
    assert_eq!(single.map(|f| f.name), Ok("one".to_owned()));
    let unreadable = load_file(&dir.0.join("two.yaml")).expect_err("missing file");
    assert!(
        unreadable[0].message.starts_with("cannot read the file"),
        "{unreadable:?}"
    );
}

#[test]
fn documents_keep_every_position() {
    let document = parse_document("x.yaml", "a:\n  - b: 1\n    c: [2]\n").expect("document");
    assert_eq!(
        document.value,
        serde_json::json!({ "a": [{ "b": 1, "c": [2] }] })
    );
    let at = |path: &str| document.locations.get(path).map(|l| (l.line, l.column));
    assert_eq!(at("a[0].c[0]"), Some((3, 9)));
    assert_eq!(at("a[0]"), Some((2, 5)));
}

#[test]
fn accepts_a_byte_order_mark() {
    let source = "\u{feff}name: bom\nsteps:\n  - card: flow.return\n";
    assert_eq!(
        parse_flow("bom.yaml", source).map(|f| f.name),
        Ok("bom".to_owned())
    );
    let json = "\u{feff}{\"name\": \"bom\", \"steps\": [{\"card\": \"flow.return\"}]}";
    assert_eq!(
        parse_flow("bom.json", json).map(|f| f.name),
        Ok("bom".to_owned())
    );
}

#[test]
fn versions_are_content_hashes() {
    assert_eq!(version_of(""), "sha256:e3b0c44298fc1c14");
    assert_ne!(version_of("a"), version_of("b"));
}

/// The expression itself is judged by `crate::schedule`; its wording is its own, so only the
/// position, path and lead of the message are pinned here.
#[test]
fn reports_invalid_schedule_expressions_at_the_field() {
    let check_schedule = |schedule: &str, expected: &str| {
        let source = format!("name: t\ntrigger:\n  schedule:\n    {schedule}\n{STEPS}");
        let errors = parse_flow("flow.yaml", &source).expect_err(schedule);
        let got: Vec<String> = errors
            .iter()
            .map(|d| {
                let text = d.to_string();
                let lead = text.find("`: ").map_or(text.len(), |cut| cut + 1);
                text[..lead].to_owned()
            })
            .collect();
        assert_eq!(got, [expected], "{schedule}");
    };
    check_schedule(
        "cron: \"0 8 * * *\"",
        "flow.yaml:4:11: trigger.schedule.cron: invalid schedule `cron(0 8 * * *)`",
    );
    check_schedule(
        "rate: 0 minutes",
        "flow.yaml:4:11: trigger.schedule.rate: invalid schedule `rate(0 minutes)`",
    );
    check_schedule(
        "at: tomorrow",
        "flow.yaml:4:9: trigger.schedule.at: invalid schedule `at(tomorrow)`",
    );
}

#[test]
fn table_files_declare_tables_beside_idflow_yaml() {
    let dir = TempDir::new(
        "table-files",
        &[
            (
                "idflow.yaml",
                "tables:\n  settings:\n    key: name\n    columns: { name: text, value: text }\n",
            ),
            (
                "tables/failed-logins.yaml",
                "# one table per file\nname: failed_logins\ncolumns: { published: datetime, user: text, ip: text, reason: text }\n",
            ),
            (
                "tables/audit.yml",
                "key: id\ncolumns: { id: text, raw: json }\n",
            ),
            ("tables/.hidden.yaml", "not: [a table\n"),
            ("tables/notes.txt", "not a table file"),
        ],
    );
    let files = project_files(&dir.0).expect("readable");
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        [
            "idflow.yaml",
            "tables/audit.yml",
            "tables/failed-logins.yaml"
        ]
    );
    let config = parse_project_files(&files).expect("valid");
    assert_eq!(
        config.tables.keys().collect::<Vec<_>>(),
        ["audit", "failed_logins", "settings"]
    );
    assert_eq!(
        config.tables["failed_logins"],
        serde_json::json!({ "columns": { "published": "datetime", "user": "text", "ip": "text", "reason": "text" } })
    );
    assert_eq!(config.tables["audit"]["key"], "id");
    // What `validate`, `serve` and `test` load is the same configuration.
    let project = load_dir(&dir.0);
    assert!(project.is_valid(), "{:?}", project.all_diagnostics());
    assert_eq!(project.config, config);
    let schemas = crate::tables::schemas(&project.config);
    assert!(schemas.1.is_empty(), "{:?}", schemas.1);
    assert_eq!(
        schemas.0["failed_logins"].column_names(),
        ["published", "user", "ip", "reason"]
    );
    // Without idflow.yaml the table files still count.
    let alone = TempDir::new(
        "table-files-alone",
        &[(
            "tables/settings.yaml",
            "key: name\ncolumns: { name: text, value: text }\n",
        )],
    );
    let project = load_dir(&alone.0);
    assert!(project.is_valid(), "{:?}", project.all_diagnostics());
    assert_eq!(project.config.tables["settings"]["key"], "name");
}

#[test]
fn reports_table_file_problems_with_file_and_line() {
    let check_files = |files: &[(&str, &str)], expected: &[&str]| {
        let files: BTreeMap<String, String> = files
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect();
        let got: Vec<String> = match parse_project_files(&files) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(got, expected, "\n{files:?}");
    };
    // Declared in idflow.yaml and again in a table file.
    check_files(
        &[
            (
                "idflow.yaml",
                "vars: {}\ntables:\n  settings: { columns: { name: text } }\n",
            ),
            (
                "tables/settings.yaml",
                "columns: { name: text, value: text }\n",
            ),
        ],
        &[
            "tables/settings.yaml:1:1: table `settings` is declared twice: in idflow.yaml:3 and in tables/settings.yaml:1; declare each table once",
        ],
    );
    // Two table files naming the same table.
    check_files(
        &[
            (
                "tables/a.yaml",
                "\nname: logins\ncolumns: { at: datetime }\n",
            ),
            ("tables/logins.yaml", "columns: { at: datetime }\n"),
        ],
        &[
            "tables/logins.yaml:1:1: table `logins` is declared twice: in tables/a.yaml:2 and in tables/logins.yaml:1; declare each table once",
        ],
    );
    // A bad column type names the file, line and the types there are.
    check_files(
        &[(
            "tables/failed-logins.yaml",
            "name: failed_logins\ncolumns:\n  user: text\n  at: date\n",
        )],
        &[
            "tables/failed-logins.yaml:4:7: columns.at: expected one of text, number, datetime, boolean, json, got `date`",
        ],
    );
    // The file name names the table unless `name:` does.
    check_files(
        &[("tables/failed-logins.yaml", "columns: { user: text }\n")],
        &[
            "tables/failed-logins.yaml:1:1: invalid table name `failed-logins`: use letters, digits and `_` (not starting with a digit, at most 64 characters); the file name names the table, so rename the file or add `name: <table>`",
        ],
    );
    check_files(
        &[(
            "tables/t.yaml",
            "name: t\nkey: id\ncolumns: { user: text }\nrows: []\n",
        )],
        &[
            "tables/t.yaml:2:6: key: key column `id` is not one of the columns (user)",
            "tables/t.yaml:4:1: rows: unknown key `rows`, expected one of name, key, columns",
        ],
    );
    check_files(
        &[("tables/t.yaml", "name: 7\ncolumns: { at: date }\n")],
        &[
            "tables/t.yaml:1:7: name: expected text, got the number 7",
            "tables/t.yaml:2:16: columns.at: expected one of text, number, datetime, boolean, json, got `date`",
        ],
    );
    check_files(
        &[("notes/x.yaml", "a: 1\n")],
        &["notes/x.yaml: not a project file: expected idflow.yaml or tables/<table>.yaml"],
    );
    // load_dir reports them too, beside the flows.
    let dir = TempDir::new(
        "table-dup",
        &[
            (
                "idflow.yaml",
                "tables:\n  settings: { columns: { name: text } }\n",
            ),
            ("tables/settings.yaml", "columns: { name: text }\n"),
        ],
    );
    let project = load_dir(&dir.0);
    assert!(!project.is_valid());
    assert_eq!(project.errors.len(), 1, "{:?}", project.errors);
    assert_eq!(project.errors[0].file, "tables/settings.yaml");
}

#[test]
fn secrets_are_refused_wherever_they_could_only_leak() {
    // Finding: a flow composed text with a secret and returned it, or failed with it as the
    // message; history masked the step but the run's output, error and logs carried it.
    let only_leak = "secret('k') cannot be used in `text.compose`: its input and output are kept in history; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`), where history shows them as [redacted]";
    check(
        "name: t\nsteps:\n  - id: a\n    card: text.compose\n    with: { text: \"k={{ secret('k') }}\" }\n  - card: flow.return\n    with: { body: \"{{ steps.a }}\" }\n",
        &[&format!("flow.yaml:5:19: steps[0].with.text: {only_leak}")],
    );
    check(
        "name: t\nsteps:\n  - card: flow.fail\n    with: { message: \"{{ secret('k') | upper }}\" }\n",
        &[
            "flow.yaml:4:22: steps[0].with.message: secret('k') cannot be used in `flow.fail`: its input and output are kept in history; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`), where history shows them as [redacted]",
        ],
    );
    let condition = "secret('k') cannot be used here: a condition, loop list or trigger setting is not sent to a connection, and its result would reveal the secret; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`)";
    check(
        "name: t\nsteps:\n  - if: \"{{ secret('k') < input.guess }}\"\n    then: [{ card: flow.return }]\n",
        &[&format!("flow.yaml:3:9: steps[0].if: {condition}")],
    );
    check(
        "name: t\nsteps:\n  - for_each: \"{{ [secret('k')] }}\"\n    flow: helper\n",
        &[&format!("flow.yaml:3:15: steps[0].for_each: {condition}")],
    );
    check(
        "name: t\nsteps:\n  - card: table.create_row\n    with: { table: t, row: { token: \"{{ secret('k') }}\" } }\n",
        &[
            "flow.yaml:4:37: steps[0].with.row.token: secret('k') cannot be used here: `table.create_row` stores its input in a table, where the console and CLI show it; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`)",
        ],
    );
    check(
        "name: t\nsteps:\n  - card: flow.call\n    with: { flow: h, with: { token: \"{{ secret('k') }}\" } }\n",
        &[
            "flow.yaml:4:37: steps[0].with.with.token: secret('k') cannot be used in `flow.call`: its input and output are kept in history; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`), where history shows them as [redacted]",
        ],
    );
    // A stream's state goes to every helper run's input.
    check(
        "name: t\nsteps:\n  - card: okta.find_users\n    with: { search: x, stream: { flow: h, state: { t: \"{{ secret('k') }}\" } } }\n",
        &[
            "flow.yaml:4:55: steps[0].with.stream.state.t: secret('k') cannot be used in the `stream` of `okta.find_users`: it is passed to every helper run as input, which history keeps; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`)",
        ],
    );
    // Where they belong: the fields of a card that sends them, in any form.
    check(
        "name: t\nsteps:\n  - card: http.request\n    with:\n      url: https://api.example.com\n      headers: { Authorization: \"Basic {{ ('svc:' ~ secret('k')) | b64encode }}\" }\n      auth: { type: bearer, token: \"{{ secret('k') }}\" }\n  - card: okta.api\n    with: { method: GET, path: /api/v1/users, query: { q: \"{{ secret('k') }}\" } }\n",
        &[],
    );
}

#[test]
fn expression_fields_cannot_be_templates() {
    // Finding: `where: "{{ input.body.where }}"` let an API caller write the predicate a public
    // endpoint evaluated, which recovered a secret by binary search.
    let message = "is an expression the card evaluates itself, written without `{{ }}` (such as `item.status == 'ACTIVE'`); it cannot be a template, so no input can change the code it runs";
    check(
        "name: t\nsteps:\n  - card: list.filter\n    with: { list: \"{{ input.body.users }}\", where: \"{{ input.body.where }}\" }\n",
        &[&format!(
            "flow.yaml:4:52: steps[0].with.where: `where` {message}"
        )],
    );
    check(
        "name: t\nsteps:\n  - card: list.map\n    with: { list: [1], expression: \"item * {{ input.n }}\" }\n",
        &[&format!(
            "flow.yaml:4:36: steps[0].with.expression: `expression` {message}"
        )],
    );
    check(
        "name: t\nsteps:\n  - card: list.filter\n    with: { list: \"{{ input.body.users }}\", where: \"item.status == 'ACTIVE'\" }\n",
        &[],
    );
}

#[test]
fn limits_take_sizes() {
    let f = flow(&format!(
        "name: t\nlimits: {{ memory: 200MiB, render: 1 MB }}\n{STEPS}"
    ));
    assert_eq!(f.limits.memory, Some(200 << 20));
    assert_eq!(f.limits.render, Some(1_000_000));
    check(
        &format!("name: t\nlimits: {{ memory: lots, rendr: 1MiB }}\n{STEPS}"),
        &[
            "flow.yaml:2:19: limits.memory: expected a size such as `10MiB`, got `lots`",
            "flow.yaml:2:25: limits.rendr: unknown key `rendr`, expected one of memory, render; did you mean `render`?",
        ],
    );
    check(
        &format!("name: t\nlimits: {{ memory: 10KiB }}\n{STEPS}"),
        &["flow.yaml:2:19: limits.memory: expected a size from 1 MiB to 4 GiB, got `10KiB`"],
    );
}

#[test]
fn a_template_that_does_not_compile_is_reported_when_the_flow_loads() {
    // Found by fuzzing: such a flow validated and deployed, then failed every run.
    check(
        "name: t\nsteps:\n  - id: greeting\n    card: text.compose\n    with: { text: \"Hello {{{ input.name }}!\" }\n",
        &[
            "flow.yaml:5:41: step `greeting`: with.text: syntax error: unexpected `}`, expected `:` in `Hello {{{ input.name }}!`",
        ],
    );
}

#[test]
fn a_project_config_beside_the_flow_directory_is_named_as_misplaced() {
    let dir = TempDir::new(
        "misplaced",
        &[
            ("idflow.yaml", "vars: {}\n"),
            ("flows/a.yaml", "name: a\nsteps: []\n"),
        ],
    );
    let flows = dir.0.join("flows");
    let found = misplaced_project_file(&flows).expect("the parent's idflow.yaml");
    assert_eq!(
        found.file_name().and_then(|n| n.to_str()),
        Some("idflow.yaml")
    );
    assert_eq!(
        found.parent().and_then(|p| p.canonicalize().ok()),
        dir.0.canonicalize().ok()
    );
    // Once the flow directory has its own, the parent's is someone else's business.
    std::fs::write(flows.join("idflow.yaml"), "vars: {}\n").expect("write");
    assert_eq!(misplaced_project_file(&flows), None);
    // `idflow.yml` is never read, inside or beside.
    std::fs::remove_file(flows.join("idflow.yaml")).expect("remove");
    std::fs::write(flows.join("idflow.yml"), "vars: {}\n").expect("write");
    assert_eq!(
        misplaced_project_file(&flows),
        Some(flows.join("idflow.yml"))
    );
}
