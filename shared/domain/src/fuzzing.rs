//! Property tests that double as fuzzers, on stable Rust (feature `fuzzing`, for tests only).
//!
//! `cargo fuzz` and libFuzzer need a nightly compiler; these targets use proptest instead: a
//! generator describes the inputs (arbitrary text, or valid flows and templates mutated), a property
//! says what must hold for every one of them, and a failure is shrunk to a minimal input before it
//! is reported.
//!
//! [`fuzz`] runs one target in one of two modes:
//!
//! - **short** (the default, in `cargo test`): a fixed number of cases from a fixed seed, so CI
//!   sees the same inputs on every run and a failure reproduces exactly;
//! - **long** (`IDFLOW_FUZZ_SECS=600 cargo test … fuzz_`): the target runs for that many seconds
//!   in batches, each from a fresh random seed, and prints how many cases it ran. Run one target at a
//!   time with `--test-threads 1` and `--nocapture` to see the count. `IDFLOW_FUZZ_SEED=<n>` replays
//!   the batch a long run reported as failing.
//!
//! A failure panics with the target's name, the property that broke, the seed and the minimal input
//! (its `Debug` form): that input becomes a regular regression test beside the code it broke.
//!
//! # Layout
//! - [`fuzz`]: the runner (short and long modes, seeds, case counts, reproducers).
//! - [`json_value`], [`hostile_text`], [`unicode_text`]: generators the targets share.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// The seed of every short run: CI sees the same cases every time.
pub const SHORT_SEED: u64 = 0x1d_f10e;

/// How a target runs this time, from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cases` cases from [`SHORT_SEED`] (or `IDFLOW_FUZZ_SEED`).
    Short,
    /// Batches from fresh seeds until this much time has passed (`IDFLOW_FUZZ_SECS`).
    Long(Duration),
}

impl Mode {
    /// `Long` when `IDFLOW_FUZZ_SECS` is a number of seconds, `Short` otherwise.
    pub fn from_env() -> Mode {
        std::env::var("IDFLOW_FUZZ_SECS")
            .ok()
            .and_then(|secs| secs.trim().parse::<u64>().ok())
            .filter(|secs| *secs > 0)
            .map_or(Mode::Short, |secs| Mode::Long(Duration::from_secs(secs)))
    }
}

/// What one call of [`fuzz`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Test cases run (shrinking steps not counted).
    pub cases: u64,
    pub elapsed: Duration,
}

/// Runs `property` over inputs from `strategy`: `cases` of them in the short mode, for
/// `IDFLOW_FUZZ_SECS` in the long mode (see the module docs). Panics with a minimal reproducer when
/// the property fails or panics.
pub fn fuzz<S>(
    target: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Report
where
    S: Strategy,
    S::Value: Debug,
{
    let mode = Mode::from_env();
    let fixed_seed = std::env::var("IDFLOW_FUZZ_SEED")
        .ok()
        .and_then(|seed| seed.trim().parse::<u64>().ok());
    let counted = AtomicU64::new(0);
    let started = Instant::now();
    let mut batch: u64 = 0;
    loop {
        let seed = match (mode, fixed_seed) {
            (_, Some(seed)) => seed,
            (Mode::Short, None) => SHORT_SEED,
            // A fresh seed per batch that can be printed and replayed.
            (Mode::Long(_), None) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ batch.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            }
        };
        let config = Config {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            // Reproducers are written into tests by hand; proptest's own files would be noise.
            failure_persistence: None,
            max_shrink_iters: 4096,
            max_shrink_time: 60_000,
            max_global_rejects: cases.saturating_mul(16),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |input| {
            counted.fetch_add(1, Ordering::Relaxed);
            property(input)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Abort(reason)) => {
                panic!("fuzz target `{target}` gave up (seed {seed}): {reason}")
            }
            Err(TestError::Fail(reason, minimal)) => panic!(
                "fuzz target `{target}` failed (seed {seed}; replay with IDFLOW_FUZZ_SEED={seed}): {reason}\nminimal input:\n{minimal:#?}"
            ),
        }
        batch += 1;
        let done = match mode {
            Mode::Short => true,
            Mode::Long(limit) => fixed_seed.is_some() || started.elapsed() >= limit,
        };
        if done {
            break;
        }
    }
    let report = Report {
        cases: counted.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    };
    // Printed in both modes so a long session's log says what it covered (visible with --nocapture).
    eprintln!(
        "fuzz target `{target}`: {} cases in {:.1}s ({} batch{})",
        report.cases,
        report.elapsed.as_secs_f64(),
        batch,
        if batch == 1 { "" } else { "es" }
    );
    report
}

/// Text that tends to break parsers: control characters, byte order marks, right-to-left marks,
/// combining characters, astral characters, and plain ASCII.
pub fn unicode_text(max: usize) -> impl Strategy<Value = String> + Clone {
    let pieces = prop_oneof![
        4 => "[a-zA-Z0-9 _.-]{0,8}",
        1 => Just("\u{feff}".to_owned()),
        1 => Just("\u{202e}".to_owned()),
        1 => Just("e\u{301}".to_owned()),
        1 => Just("\u{1f600}".to_owned()),
        1 => Just("\u{0}".to_owned()),
        1 => Just("\r\n".to_owned()),
        1 => Just("\t".to_owned()),
        1 => Just("\u{85}\u{2028}".to_owned()),
        1 => Just("ÿ".to_owned()),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(pieces, 0..max).prop_map(|parts| parts.concat())
}

/// Text built from fragments that mean something to YAML, JSON, Jinja and HTTP, mixed with arbitrary
/// characters: it reaches deeper into a parser than uniformly random text does.
pub fn hostile_text(max_fragments: usize) -> impl Strategy<Value = String> + Clone {
    const FRAGMENTS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ": ",
        ",",
        "- ",
        "-",
        "?",
        "? ",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "!!str ",
        "!!int ",
        "!custom ",
        "!!map ",
        "|",
        "|-",
        ">",
        "\n",
        "\n  ",
        "\n    ",
        "  ",
        "'",
        "\"",
        "#",
        "---\n",
        "...\n",
        "<<: ",
        "\u{feff}",
        "\t",
        "%YAML 1.2\n",
        "%TAG ! tag:x,2000:\n",
        "0",
        "-1",
        "1e400",
        "0x1f",
        "0o17",
        "9223372036854775808",
        "1.5",
        ".inf",
        "~",
        "null",
        "true",
        "on",
        "name",
        "steps",
        "card",
        "with",
        "trigger",
        "id",
        "if",
        "then",
        "else",
        "loop",
        "map",
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "\\",
        "\\u0000",
        "\\ud800",
        "é",
        "\u{10ffff}",
        "\r",
        "\u{0}",
        "%ff",
        "%",
        "=",
        "&",
        "@",
        "`",
    ];
    let fragment = prop_oneof![
        6 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => "[a-z0-9]{1,6}",
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(fragment, 0..max_fragments).prop_map(|parts| parts.concat())
}

/// Arbitrary JSON: every type, odd numbers, unicode keys and strings, nested up to `depth`.
pub fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> + Clone {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(serde_json::Value::Number),
        unicode_text(6).prop_map(serde_json::Value::String),
        "[a-z]{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::vec(("[a-z_]{0,6}|\\PC{0,4}", inner), 0..6)
                .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// JSON text nested `levels` deep (lists and objects alternating), to probe recursion limits. Text,
/// not a `serde_json::Value`: building, printing or dropping a value that deep would overflow the
/// test's own stack.
pub fn deep_json_text(levels: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for level in 0..levels {
        if level % 2 == 0 {
            open.push('[');
            close.insert(0, ']');
        } else {
            open.push_str("{\"k\":");
            close.insert(0, '}');
        }
    }
    format!("{open}null{close}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_property_is_reported_with_its_minimal_input() {
        let failure = std::panic::catch_unwind(|| {
            fuzz("demo", 64, 0u32..1000, |n| {
                prop_assert!(n < 500, "{n} is too large");
                Ok(())
            })
        })
        .expect_err("the property fails for 500 and above");
        let message = failure
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("fuzz target `demo` failed"), "{message}");
        assert!(message.contains("minimal input:\n500"), "{message}");
    }

    #[test]
    fn short_runs_are_deterministic() {
        let seen = |_: ()| {
            let values = std::sync::Mutex::new(Vec::new());
            fuzz("same", 16, any::<u64>(), |n| {
                values.lock().unwrap_or_else(|p| p.into_inner()).push(n);
                Ok(())
            });
            values.into_inner().unwrap_or_else(|p| p.into_inner())
        };
        if Mode::from_env() == Mode::Short && std::env::var("IDFLOW_FUZZ_SEED").is_err() {
            assert_eq!(seen(()), seen(()));
        }
    }
}
