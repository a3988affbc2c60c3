//! Dates and time zones as flows write them: the parsing and formatting the `date.*` cards and the
//! `date` template filter share.

use std::fmt::Write as _;

use chrono::format::StrftimeItems;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use serde_json::Value;

/// Reads a date: RFC 3339, `YYYY-MM-DDTHH:MM:SS` (UTC), a plain date (midnight UTC), RFC 2822, or
/// Unix seconds.
pub fn parse_datetime(value: &Value) -> Result<DateTime<FixedOffset>, String> {
    let utc = FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset"));
    match value {
        Value::String(text) => {
            let text = text.trim();
            if let Ok(date) = DateTime::parse_from_rfc3339(text) {
                return Ok(date);
            }
            for format in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
            ] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                    return Ok(naive.and_utc().with_timezone(&utc));
                }
            }
            if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                return Ok(date
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .with_timezone(&utc));
            }
            if let Ok(date) = DateTime::parse_from_rfc2822(text) {
                return Ok(date);
            }
            Err(format!(
                "expected a date such as 2024-05-01T08:30:00Z, got text \"{text}\""
            ))
        }
        Value::Number(number) => {
            let date = match number.as_i64() {
                Some(seconds) => DateTime::from_timestamp(seconds, 0),
                None => number.as_f64().and_then(|seconds| {
                    let millis = (seconds * 1000.0).round();
                    if millis.is_finite() && millis.abs() < 9.0e15 {
                        DateTime::from_timestamp_millis(millis as i64)
                    } else {
                        None
                    }
                }),
            };
            date.map(|date| date.with_timezone(&utc))
                .ok_or_else(|| format!("{number} is out of range for a date"))
        }
        other => Err(format!("expected a date, got {}", kind_of(other))),
    }
}

/// An IANA time zone by name (`UTC` included).
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; expected an IANA name such as Europe/Paris")
    })
}

/// Formats a date with strftime (`None`: RFC 3339), in `zone` or its own offset. An invalid format is
/// an error, never a panic.
pub fn format_datetime(
    date: &DateTime<FixedOffset>,
    format: Option<&str>,
    zone: Option<chrono_tz::Tz>,
) -> Result<String, String> {
    match zone {
        Some(zone) => format_in(&date.with_timezone(&zone), format),
        None => format_in(date, format),
    }
}

fn format_in<Z: TimeZone>(date: &DateTime<Z>, format: Option<&str>) -> Result<String, String>
where
    Z::Offset: std::fmt::Display,
{
    let Some(format) = format else {
        return Ok(date.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    };
    let items = StrftimeItems::new(format)
        .parse()
        .map_err(|_| format!("invalid date format `{format}`"))?;
    let mut out = String::new();
    write!(out, "{}", date.format_with_items(items.iter()))
        .map_err(|_| format!("date format `{format}` cannot be applied to this date"))?;
    Ok(out)
}

/// What a value that is not a date is, for messages (text is handled before this is reached).
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
