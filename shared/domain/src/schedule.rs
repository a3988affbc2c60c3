//! EventBridge Scheduler expressions (`cron(...)`, `rate(...)`, `at(...)`) and their fire times.
//!
//! A schedule flow names its trigger the way EventBridge Scheduler takes it, so the same text deploys
//! unchanged to AWS and runs in `idflow serve`. This module checks that text as strictly as AWS
//! documents it, so that a flow which runs locally does not fail at deploy time, and computes the
//! next fire time for the local scheduler.
//!
//! # Expressions
//! - `cron(minutes hours day-of-month month day-of-week year)`: six fields. Day-of-week counts
//!   1 = SUN to 7 = SAT. Exactly one of day-of-month and day-of-week must be `?`. `L` is the last
//!   day of the month (day-of-month) or Saturday, the last day of the week (day-of-week); `6L` is
//!   the last Friday of the month; `15W` the weekday nearest the 15th, never leaving the month;
//!   `2#1` the first Monday of the month. Years run from 1970 to 2199.
//! - `rate(value unit)`: `minute`, `hour` or `day` with a value of 1, `minutes`, `hours` or `days`
//!   with any larger value. It fires at `anchor + k * interval` for k = 0, 1, 2, …, where the anchor
//!   is when the schedule was created or loaded. A day is 24 hours, whatever the clocks do.
//! - `at(yyyy-mm-ddThh:mm:ss)`: once, at that wall clock time.
//!
//! # Time zones and daylight saving time
//! `cron` and `at` are read in the schedule's IANA time zone (UTC when none is given). AWS documents
//! how its scheduler treats clock changes, and `cron` follows it:
//! - when clocks go forward, a wall clock time that does not exist that day is skipped;
//! - when clocks go back, a wall clock time that occurs twice fires once, at its first occurrence.
//!
//! AWS does not document `at` on a clock change. A one-time schedule that was skipped would never
//! fire at all, so a time inside a gap fires at the end of the gap (`at(2024-03-31T02:30:00)` in
//! Europe/Paris fires at 03:00 CEST), and a time that occurs twice fires at its first occurrence.
//!
//! # Computation
//! Expressions are validated here, field by field, then rewritten into a pattern for the `croner`
//! crate, which finds matching wall clock times. Every field is expanded into explicit values so
//! croner only sees syntax whose meaning is unambiguous, and croner runs on naive wall clock times:
//! the time zone rules above are applied here rather than croner's own (croner moves a skipped
//! time past the gap and runs interval patterns twice in a repeated hour, which AWS does not).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use croner::Cron;

use crate::datetime::Zone;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

/// The last year EventBridge Scheduler's cron year field accepts.
const LAST_YEAR: u32 = 2199;

/// How many skipped wall clock matches (in a clock change) a search tolerates before it gives up.
/// A gap or a repeated range lasts at most a day (Samoa skipped 30 December 2011), which holds at
/// most 1440 minute matches, so this is never reached by a real zone.
const MAX_SKIPPED_MATCHES: usize = 10_000;

/// A parsed EventBridge Scheduler expression with its time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    expression: String,
    timezone: Option<String>,
    zone: Zone,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// A croner pattern (seconds and year fields, Quartz weekday numbering) over wall clock times.
    Cron(Box<Cron>),
    /// A fixed interval from the anchor.
    Rate(TimeDelta),
    /// The instant the one-time schedule fires, already resolved in the schedule's time zone.
    At(DateTime<Utc>),
}

/// A field of a `cron(...)` expression, named as AWS names it in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronField {
    /// The first field, 0-59.
    Minutes,
    /// The second field, 0-23.
    Hours,
    /// The third field, 1-31.
    DayOfMonth,
    /// The fourth field, 1-12 or JAN-DEC.
    Month,
    /// The fifth field, 1-7 or SUN-SAT.
    DayOfWeek,
    /// The sixth field, 1970-2199.
    Year,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        })
    }
}

/// What is wrong with one field of a `cron(...)` expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// A value outside the field's range, or a name the field does not know.
    #[error("expected {expected}, got {got}")]
    OutOfRange {
        /// The values the field takes, such as `1-7 or SUN-SAT`.
        expected: &'static str,
        /// The value as written (upper-cased).
        got: String,
    },
    /// A list, range, step or modifier with a missing value, such as `1,,2`, `5-` or `W`.
    #[error("`{text}` has an empty value")]
    Malformed {
        /// The field as written.
        text: String,
    },
    /// A step (`/n`) that is not a number within the field's span.
    #[error("step must be 1-{max}, got {got}")]
    BadStep {
        /// The largest step that still makes sense for the field.
        max: u32,
        /// The step as written.
        got: String,
    },
    /// A range whose start is after its end, such as `10-5`.
    #[error("range {range} runs backwards; write the lower value first")]
    Backwards {
        /// The range as written.
        range: String,
    },
    /// A wildcard character that AWS does not allow in this field.
    #[error("`{wildcard}` is not allowed here; allowed wildcards are {allowed}")]
    WildcardNotAllowed {
        /// The character found.
        wildcard: char,
        /// The wildcards the field allows, as AWS lists them.
        allowed: &'static str,
    },
    /// `?`, `L`, `W` or `#` combined with other values; each must be the whole field.
    #[error("`{token}` must be the whole field, not part of a list")]
    MustStandAlone {
        /// The offending item.
        token: String,
    },
    /// An occurrence after `#` outside 1-5.
    #[error("expected an occurrence 1-5 after `#`, got {got}")]
    NthOutOfRange {
        /// The occurrence as written.
        got: String,
    },
    /// `L-n` or `LW`: Quartz extensions that EventBridge Scheduler does not document.
    #[error(
        "`{token}` is not supported: EventBridge Scheduler documents only `L`, the last day of the month"
    )]
    UnsupportedLast {
        /// The item as written.
        token: String,
    },
}

/// Why an expression or time zone was rejected. Parse errors never succeed on retry.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is empty or blank.
    #[error("schedule expression is empty")]
    Empty,
    /// The expression is not `cron(...)`, `rate(...)` or `at(...)`.
    #[error("schedule expression must be `cron(...)`, `rate(...)` or `at(...)`, got `{got}`")]
    UnknownKind {
        /// The expression as written.
        got: String,
    },
    /// A `cron(...)` without exactly six fields.
    #[error(
        "cron expression must have 6 fields (minutes hours day-of-month month day-of-week year), got {count}"
    )]
    CronFieldCount {
        /// How many whitespace-separated fields there were.
        count: usize,
    },
    /// One field of a `cron(...)` is invalid.
    #[error("{field}: {problem}")]
    CronField {
        /// Which field.
        field: CronField,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// Both day-of-month and day-of-week hold values; AWS requires `?` in one of them.
    #[error("day-of-month and day-of-week are both set; use `?` in one of them")]
    BothDaysSet,
    /// Both day-of-month and day-of-week are `?`; AWS requires a value or `*` in one of them.
    #[error("day-of-month and day-of-week are both `?`; exactly one of them must be `?`")]
    BothDaysAny,
    /// A `rate(...)` that is not two words.
    #[error("rate: expected `rate(value unit)` such as `rate(5 minutes)`, got `{got}`")]
    RateSyntax {
        /// The expression as written.
        got: String,
    },
    /// A rate value that is not a whole number of at least 1.
    #[error("rate: value must be a whole number of at least 1, got {got}")]
    RateValue {
        /// The value as written.
        got: String,
    },
    /// A rate whose interval does not fit in a time delta.
    #[error("rate: interval `{got}` is too large")]
    RateTooLarge {
        /// The expression as written.
        got: String,
    },
    /// A rate unit other than minute(s), hour(s) or day(s).
    #[error("rate: unknown unit `{got}`; expected minute, minutes, hour, hours, day or days")]
    RateUnit {
        /// The unit as written.
        got: String,
    },
    /// `rate(1 minutes)` or `rate(5 minute)`: AWS takes the singular only with 1.
    #[error("rate: a value of {value} takes the unit `{expected}`, got `{got}`")]
    RateUnitNumber {
        /// The value.
        value: u64,
        /// The unit AWS expects with that value.
        expected: &'static str,
        /// The unit as written.
        got: String,
    },
    /// An `at(...)` not in the form `yyyy-mm-ddThh:mm:ss`.
    #[error("at: expected `at(yyyy-mm-ddThh:mm:ss)`, got `{got}`")]
    AtSyntax {
        /// The expression as written.
        got: String,
    },
    /// An `at(...)` in the right form naming a date or time that does not exist, such as 30 February.
    #[error("at: {got} is not a valid date and time")]
    AtInvalid {
        /// The date and time as written.
        got: String,
    },
    /// A time zone that is not an IANA name known to the bundled time zone database.
    #[error("unknown time zone `{name}`; expected an IANA name such as Europe/Paris")]
    UnknownTimezone {
        /// The name as written.
        name: String,
    },
    /// croner rejected the pattern this module generated: a bug here, not in the flow.
    #[error("internal error: croner rejected generated pattern `{pattern}`")]
    Engine {
        /// The generated croner pattern.
        pattern: String,
        /// croner's error.
        #[source]
        source: CronError,
    },
}

impl ScheduleError {
    /// Always `false`: the same expression fails the same way every time.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl Schedule {
    /// Parses an EventBridge Scheduler expression, read in `timezone` (an IANA name; UTC if `None`).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let text = expression.trim();
        if text.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let zone = match timezone {
            None => Zone::utc(),
            Some(name) => Zone::from_str(name).map_err(|_| ScheduleError::UnknownTimezone {
                name: name.to_string(),
            })?,
        };
        let kind = if let Some(body) = inner(text, "cron(") {
            Kind::Cron(Box::new(parse_cron(body)?))
        } else if let Some(body) = inner(text, "rate(") {
            Kind::Rate(parse_rate(text, body)?)
        } else if let Some(body) = inner(text, "at(") {
            Kind::At(parse_at(text, body, &zone)?)
        } else {
            return Err(ScheduleError::UnknownKind {
                got: text.to_string(),
            });
        };
        Ok(Schedule {
            expression: expression.to_string(),
            timezone: timezone.map(str::to_string),
            zone,
            kind,
        })
    }

    /// First fire time strictly after `after`; `anchor` is used by rate() schedules.
    ///
    /// `None` when the schedule never fires again: an `at` in the past, or a `cron` whose years are
    /// over (or past 2199).
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(cron) => next_cron(cron, &self.zone, after),
            Kind::Rate(interval) => next_rate(*interval, after, anchor),
            Kind::At(instant) => (*instant > after).then_some(*instant),
        }
    }

    /// The expression exactly as given to [`Schedule::parse`].
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone exactly as given to [`Schedule::parse`]; `None` means UTC.
    pub fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
}

/// The text between `prefix` and a closing `)` at the very end, if `text` has that shape.
fn inner<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)?.strip_suffix(')')
}

// ---------------------------------------------------------------------------------------------
// cron
// ---------------------------------------------------------------------------------------------

/// The range, names and wildcards of one cron field, as AWS documents them.
struct FieldSpec {
    field: CronField,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, … (months and weekdays).
    names: &'static [&'static str],
    expected: &'static str,
    /// The wildcard characters AWS lists for the field.
    allowed: &'static str,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const MINUTES: FieldSpec = FieldSpec {
    field: CronField::Minutes,
    min: 0,
    max: 59,
    names: &[],
    expected: "0-59",
    allowed: ", - * /",
};
const HOURS: FieldSpec = FieldSpec {
    field: CronField::Hours,
    min: 0,
    max: 23,
    names: &[],
    expected: "0-23",
    allowed: ", - * /",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
    expected: "1-31",
    allowed: ", - * ? / L W",
};
const MONTH: FieldSpec = FieldSpec {
    field: CronField::Month,
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    expected: "1-12 or JAN-DEC",
    allowed: ", - * /",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: CronField::DayOfWeek,
    min: 1,
    max: 7,
    names: &DAY_NAMES,
    expected: "1-7 or SUN-SAT",
    allowed: ", - * ? L #",
};
const YEAR: FieldSpec = FieldSpec {
    field: CronField::Year,
    min: 1970,
    max: 2199,
    names: &[],
    expected: "1970-2199",
    allowed: ", - * /",
};

/// Day-of-month as AWS allows it.
enum DayOfMonth {
    Any,
    Last,
    NearestWeekday(u32),
    Days(Vec<u32>),
}

/// Day-of-week as AWS allows it, in AWS numbering (1 = SUN).
enum DayOfWeek {
    Any,
    LastOfMonth(u32),
    Nth(u32, u32),
    Days(Vec<u32>),
}

fn parse_cron(body: &str) -> Result<Cron, ScheduleError> {
    let fields: Vec<String> = body
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let [minutes, hours, day_of_month, month, day_of_week, year] = fields.as_slice() else {
        return Err(ScheduleError::CronFieldCount {
            count: fields.len(),
        });
    };
    let field_error = |spec: &FieldSpec| {
        let field = spec.field;
        move |problem| ScheduleError::CronField { field, problem }
    };
    let minutes = parse_values(&MINUTES, minutes).map_err(field_error(&MINUTES))?;
    let hours = parse_values(&HOURS, hours).map_err(field_error(&HOURS))?;
    let day_of_month = parse_day_of_month(day_of_month).map_err(field_error(&DAY_OF_MONTH))?;
    let month = parse_values(&MONTH, month).map_err(field_error(&MONTH))?;
    let day_of_week = parse_day_of_week(day_of_week).map_err(field_error(&DAY_OF_WEEK))?;
    let year = parse_values(&YEAR, year).map_err(field_error(&YEAR))?;

    // croner accepts both day fields set (it ORs them, as Vixie cron does); AWS rejects that.
    let day_of_month = match (day_of_month, &day_of_week) {
        (DayOfMonth::Any, DayOfWeek::Any) => return Err(ScheduleError::BothDaysAny),
        (DayOfMonth::Any, _) => "*".to_string(),
        (DayOfMonth::Last, DayOfWeek::Any) => "L".to_string(),
        (DayOfMonth::NearestWeekday(day), DayOfWeek::Any) => format!("{day}W"),
        (DayOfMonth::Days(days), DayOfWeek::Any) => render(&DAY_OF_MONTH, &days),
        _ => return Err(ScheduleError::BothDaysSet),
    };
    // With `alternative_weekdays`, croner numbers weekdays 1 = SUN to 7 = SAT, exactly as AWS does.
    let day_of_week = match day_of_week {
        DayOfWeek::Any => "*".to_string(),
        DayOfWeek::LastOfMonth(day) => format!("{day}L"),
        DayOfWeek::Nth(day, nth) => format!("{day}#{nth}"),
        DayOfWeek::Days(days) => render(&DAY_OF_WEEK, &days),
    };
    // The leading 0 is croner's seconds field: AWS fires on whole minutes.
    let pattern = format!(
        "0 {} {} {day_of_month} {} {day_of_week} {}",
        render(&MINUTES, &minutes),
        render(&HOURS, &hours),
        render(&MONTH, &month),
        render(&YEAR, &year),
    );
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .build()
        .parse(&pattern)
        .map_err(|source| ScheduleError::Engine { pattern, source })
}

/// `*` for a field's full range, otherwise its values as a plain list.
fn render(spec: &FieldSpec, values: &[u32]) -> String {
    if values.len() as u32 == spec.max - spec.min + 1 {
        // croner's own year range is wider than AWS's, so a full year field is spelled out.
        return if spec.field == CronField::Year {
            format!("{}-{}", spec.min, spec.max)
        } else {
            "*".to_string()
        };
    }
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Rejects wildcard characters AWS does not list for the field. Letters are checked only in
/// numeric fields, since month and weekday names contain `L` and `W` (JUL, WED).
fn check_wildcards(spec: &FieldSpec, text: &str) -> Result<(), FieldProblem> {
    let numeric = spec.names.is_empty();
    for wildcard in text.chars() {
        let is_wildcard = matches!(wildcard, ',' | '-' | '*' | '/' | '?' | '#')
            || (numeric && matches!(wildcard, 'L' | 'W'));
        if is_wildcard && !spec.allowed.contains(wildcard) {
            return Err(FieldProblem::WildcardNotAllowed {
                wildcard,
                allowed: spec.allowed,
            });
        }
    }
    Ok(())
}

fn parse_day_of_month(text: &str) -> Result<DayOfMonth, FieldProblem> {
    let spec = &DAY_OF_MONTH;
    check_wildcards(spec, text)?;
    let is_special = |item: &str| item.contains(['?', 'L', 'W']);
    if text.contains(',') {
        if let Some(item) = text.split(',').find(|item| is_special(item)) {
            return Err(FieldProblem::MustStandAlone {
                token: item.to_string(),
            });
        }
        return parse_values(spec, text).map(DayOfMonth::Days);
    }
    if text == "?" {
        return Ok(DayOfMonth::Any);
    }
    if text == "L" {
        return Ok(DayOfMonth::Last);
    }
    if text.starts_with('L') {
        return Err(FieldProblem::UnsupportedLast {
            token: text.to_string(),
        });
    }
    if let Some(day) = text.strip_suffix('W') {
        return parse_value(spec, text, day).map(DayOfMonth::NearestWeekday);
    }
    parse_values(spec, text).map(DayOfMonth::Days)
}

fn parse_day_of_week(text: &str) -> Result<DayOfWeek, FieldProblem> {
    let spec = &DAY_OF_WEEK;
    check_wildcards(spec, text)?;
    // `L` at the end of an item is the "last" modifier; `L` inside a name is just a letter.
    let is_special = |item: &str| item.contains(['?', '#']) || item.ends_with('L');
    if text.contains(',') {
        if let Some(item) = text.split(',').find(|item| is_special(item)) {
            return Err(FieldProblem::MustStandAlone {
                token: item.to_string(),
            });
        }
        return parse_values(spec, text).map(DayOfWeek::Days);
    }
    if text == "?" {
        return Ok(DayOfWeek::Any);
    }
    // AWS: "L in day-of-week specifies the last day of the week", which is Saturday (7).
    if text == "L" {
        return Ok(DayOfWeek::Days(vec![7]));
    }
    if let Some((day, nth)) = text.split_once('#') {
        let day = parse_value(spec, text, day)?;
        return match nth.parse::<u32>() {
            Ok(occurrence) if is_digits(nth) && (1..=5).contains(&occurrence) => {
                Ok(DayOfWeek::Nth(day, occurrence))
            }
            _ => Err(FieldProblem::NthOutOfRange {
                got: nth.to_string(),
            }),
        };
    }
    if let Some(day) = text.strip_suffix('L') {
        return parse_value(spec, text, day).map(DayOfWeek::LastOfMonth);
    }
    parse_values(spec, text).map(DayOfWeek::Days)
}

/// Parses a list of values, ranges and steps into the sorted values it selects.
fn parse_values(spec: &FieldSpec, text: &str) -> Result<Vec<u32>, FieldProblem> {
    check_wildcards(spec, text)?;
    let mut selected = vec![false; (spec.max - spec.min + 1) as usize];
    for item in text.split(',') {
        if item == "?" {
            return Err(FieldProblem::MustStandAlone {
                token: item.to_string(),
            });
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(parse_step(spec, step)?)),
            None => (item, None),
        };
        let (start, end) = if base == "*" {
            (spec.min, spec.max)
        } else if let Some((start, end)) = base.split_once('-') {
            let (start, end) = (
                parse_value(spec, text, start)?,
                parse_value(spec, text, end)?,
            );
            if start > end {
                return Err(FieldProblem::Backwards {
                    range: base.to_string(),
                });
            }
            (start, end)
        } else {
            let start = parse_value(spec, text, base)?;
            // AWS reads `1/10` as "from 1, every 10", to the end of the field's range.
            (start, if step.is_some() { spec.max } else { start })
        };
        for value in (start..=end).step_by(step.unwrap_or(1) as usize) {
            selected[(value - spec.min) as usize] = true;
        }
    }
    Ok((spec.min..=spec.max)
        .filter(|value| selected[(value - spec.min) as usize])
        .collect())
}

fn parse_step(spec: &FieldSpec, text: &str) -> Result<u32, FieldProblem> {
    let max = spec.max - spec.min + 1;
    match text.parse::<u32>() {
        Ok(step) if is_digits(text) && (1..=max).contains(&step) => Ok(step),
        _ => Err(FieldProblem::BadStep {
            max,
            got: text.to_string(),
        }),
    }
}

/// One value: a number in range or (for months and weekdays) a three-letter name.
fn parse_value(spec: &FieldSpec, field_text: &str, text: &str) -> Result<u32, FieldProblem> {
    if text.is_empty() {
        return Err(FieldProblem::Malformed {
            text: field_text.to_string(),
        });
    }
    let out_of_range = || FieldProblem::OutOfRange {
        expected: spec.expected,
        got: text.to_string(),
    };
    if is_digits(text) {
        return match text.parse::<u32>() {
            Ok(value) if (spec.min..=spec.max).contains(&value) => Ok(value),
            _ => Err(out_of_range()),
        };
    }
    spec.names
        .iter()
        .position(|name| *name == text)
        .map(|index| spec.min + index as u32)
        .ok_or_else(out_of_range)
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// The first instant after `after` whose wall clock time in `zone` matches `cron`, applying AWS's
/// rules for clock changes (see the module docs).
fn next_cron(cron: &Cron, zone: &Zone, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut wall = after.with_timezone(zone).naive_local();
    for _ in 0..MAX_SKIPPED_MATCHES {
        // croner errs only when no later match exists before its own year limit.
        wall = cron.find_next_occurrence(&wall, false).ok()?;
        if wall.year() > LAST_YEAR as i32 {
            return None;
        }
        let instant = match zone.from_local_datetime(&wall) {
            LocalResult::Single(instant) => instant,
            // Clocks went back: the wall time occurs twice and fires only at the first.
            LocalResult::Ambiguous(first, _) => first,
            // Clocks went forward: the wall time does not exist that day and is skipped.
            LocalResult::None => continue,
        };
        let instant = instant.with_timezone(&Utc);
        if instant > after {
            return Some(instant);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// rate
// ---------------------------------------------------------------------------------------------

fn parse_rate(expression: &str, body: &str) -> Result<TimeDelta, ScheduleError> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let [value_text, unit] = words.as_slice() else {
        return Err(ScheduleError::RateSyntax {
            got: expression.to_string(),
        });
    };
    let value = match value_text.parse::<u64>() {
        Ok(value) if is_digits(value_text) && value >= 1 => value,
        Err(_) if is_digits(value_text) => {
            return Err(ScheduleError::RateTooLarge {
                got: expression.to_string(),
            });
        }
        _ => {
            return Err(ScheduleError::RateValue {
                got: value_text.to_string(),
            });
        }
    };
    let (singular, plural, seconds_per_unit) = match *unit {
        "minute" | "minutes" => ("minute", "minutes", 60),
        "hour" | "hours" => ("hour", "hours", 3_600),
        "day" | "days" => ("day", "days", 86_400),
        _ => {
            return Err(ScheduleError::RateUnit {
                got: unit.to_string(),
            });
        }
    };
    let expected = if value == 1 { singular } else { plural };
    if *unit != expected {
        return Err(ScheduleError::RateUnitNumber {
            value,
            expected,
            got: unit.to_string(),
        });
    }
    value
        .checked_mul(seconds_per_unit)
        .and_then(|seconds| i64::try_from(seconds).ok())
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| ScheduleError::RateTooLarge {
            got: expression.to_string(),
        })
}

/// The first `anchor + k * interval` (k ≥ 0) strictly after `after`.
fn next_rate(
    interval: TimeDelta,
    after: DateTime<Utc>,
    anchor: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if after < anchor {
        return Some(anchor);
    }
    let nanos = |delta: TimeDelta| {
        i128::from(delta.num_seconds()) * 1_000_000_000 + i128::from(delta.subsec_nanos())
    };
    let interval_nanos = nanos(interval);
    let periods = nanos(after - anchor) / interval_nanos + 1;
    let offset_nanos = periods * interval_nanos;
    let offset = TimeDelta::new(
        i64::try_from(offset_nanos.div_euclid(1_000_000_000)).ok()?,
        u32::try_from(offset_nanos.rem_euclid(1_000_000_000)).ok()?,
    )?;
    anchor.checked_add_signed(offset)
}

// ---------------------------------------------------------------------------------------------
// at
// ---------------------------------------------------------------------------------------------

fn parse_at(expression: &str, body: &str, zone: &Zone) -> Result<DateTime<Utc>, ScheduleError> {
    // chrono's parser is lenient (it takes one-digit fields and leap seconds), so the shape is
    // checked first: exactly yyyy-mm-ddThh:mm:ss.
    let shape_ok = body.len() == 19
        && body.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            10 => byte == b'T',
            13 | 16 => byte == b':',
            _ => byte.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(ScheduleError::AtSyntax {
            got: expression.to_string(),
        });
    }
    let invalid = || ScheduleError::AtInvalid {
        got: body.to_string(),
    };
    let wall = NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S").map_err(|_| invalid())?;
    if wall.nanosecond() != 0 {
        // A leap second (`:60`): not a time AWS schedules.
        return Err(invalid());
    }
    resolve_at(zone, wall).ok_or_else(invalid)
}

/// The instant a one-time schedule fires: its wall time, the first of two when clocks go back,
/// or the end of the gap when clocks go forward over it.
fn resolve_at(zone: &Zone, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut candidate = wall;
    // Gaps start and end on whole minutes in every zone since the 1900s; a day of minutes covers
    // the longest one.
    for _ in 0..=24 * 60 {
        match zone.from_local_datetime(&candidate) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => {
                return Some(instant.with_timezone(&Utc));
            }
            LocalResult::None => {
                candidate = candidate.with_second(0)? + TimeDelta::minutes(1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks one line of `schedule_cases.txt`:
    /// `expression | timezone or - | after | anchor or - | expected`.
    ///
    /// `expected` is either `error: <message>`, or the fire times that follow `after`, in order,
    /// as RFC 3339 instants, optionally ending with `none` when the schedule stops firing.
    fn check(line: &str) -> Result<(), String> {
        let columns: Vec<&str> = line.split('|').map(str::trim).collect();
        let [expression, timezone, after, anchor, expected] = columns.as_slice() else {
            return Err("expected 5 columns separated by |".to_string());
        };
        let timezone = (*timezone != "-").then_some(*timezone);
        let parsed = Schedule::parse(expression, timezone);
        if let Some(message) = expected.strip_prefix("error:") {
            return match parsed {
                Err(error) if error.to_string() == message.trim() => Ok(()),
                Err(error) => Err(format!("got error `{error}`")),
                Ok(_) => Err("parsed, expected an error".to_string()),
            };
        }
        let schedule = parsed.map_err(|error| format!("got error `{error}`"))?;
        let instant = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|instant| instant.with_timezone(&Utc))
                .map_err(|error| format!("bad instant `{text}` in the table: {error}"))
        };
        let mut cursor = instant(after)?;
        let anchor = if *anchor == "-" {
            cursor
        } else {
            instant(anchor)?
        };
        let want = expected
            .split_whitespace()
            .map(|text| match text {
                "none" => Ok("none".to_string()),
                text => instant(text).map(|instant| instant.to_rfc3339()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut got = Vec::new();
        while got.len() < want.len() {
            let next = schedule.next_after(cursor, anchor);
            got.push(next.map_or("none".to_string(), |next| next.to_rfc3339()));
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        if got != want {
            return Err(format!("fired at {got:?}, expected {want:?}"));
        }
        Ok(())
    }

    #[test]
    fn documented_cases_fire_and_fail_as_expected() {
        let table = include_str!("schedule_cases.txt");
        let mut cases = 0;
        let mut failures = Vec::new();
        for (index, line) in table.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            cases += 1;
            if let Err(failure) = check(line) {
                failures.push(format!("line {}: {line}\n    {failure}", index + 1));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(cases >= 40, "only {cases} cases");
    }

    #[test]
    fn keeps_expression_and_timezone_as_given() {
        let schedule = Schedule::parse("cron(0 8 * * ? *)", Some("Europe/Paris")).unwrap();
        assert_eq!(schedule.expression(), "cron(0 8 * * ? *)");
        assert_eq!(schedule.timezone(), Some("Europe/Paris"));
        assert_eq!(schedule.clone(), schedule);

        let utc = Schedule::parse("rate(5 minutes)", None).unwrap();
        assert_eq!(utc.timezone(), None);
        assert_ne!(utc, schedule);
    }

    #[test]
    fn names_the_field_in_typed_errors() {
        let error = Schedule::parse("cron(0 10 ? * 8 *)", None).unwrap_err();
        assert!(matches!(
            error,
            ScheduleError::CronField {
                field: CronField::DayOfWeek,
                problem: FieldProblem::OutOfRange { .. }
            }
        ));
        assert!(!error.is_retryable());
    }

    #[test]
    fn names_are_case_insensitive() {
        let upper = Schedule::parse("cron(0 18 ? JAN-MAR MON-FRI *)", None).unwrap();
        let lower = Schedule::parse("cron(0 18 ? jan-mar mon-fri *)", None).unwrap();
        let after = Utc.with_ymd_and_hms(2024, 5, 15, 12, 0, 0).unwrap();
        assert_eq!(
            upper.next_after(after, after),
            lower.next_after(after, after)
        );
    }

    #[test]
    fn impossible_dates_never_fire() {
        let schedule = Schedule::parse("cron(0 0 30 2 ? *)", None).unwrap();
        let after = Utc.with_ymd_and_hms(2024, 5, 15, 12, 0, 0).unwrap();
        assert_eq!(schedule.next_after(after, after), None);
    }
}
