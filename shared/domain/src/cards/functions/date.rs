//! `date.*`: the step time, adding time, formatting, parsing and measuring between dates.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::text::TEXT;
use crate::cards::fields::{Fields, With, invalid};
use crate::cards::spec::{CardError, CardSpec, FieldSpec, PureContext, PureResult};
use crate::datetime::{Zone, format_datetime, parse_datetime, parse_timezone};

const DATE_DOC: &str = "an RFC 3339 date (`2024-05-01T08:30:00Z`), a plain date (`2024-05-01`, midnight UTC) or Unix seconds";
const TZ_DOC: &str =
    "IANA time zone such as `Europe/Paris` (default: the date's own offset, UTC for `date.now`)";

/// The date cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure(
        "date.now",
        "The step time",
        &[FieldSpec::optional("timezone", "text", TZ_DOC)],
        "RFC 3339 date",
        date_now,
    ),
    CardSpec::pure(
        "date.add",
        "Adds (or subtracts) time",
        &[
            FieldSpec::required("date", "datetime", DATE_DOC),
            FieldSpec::optional(
                "amount",
                "duration",
                "a duration such as `90m`, `1h30m` or `-24h`",
            ),
            FieldSpec::optional(
                "days",
                "integer",
                "calendar days (negative to go back); follows `timezone` across daylight saving changes",
            ),
            FieldSpec::optional(
                "months",
                "integer",
                "calendar months (negative to go back); the day is clamped to the month's end",
            ),
            FieldSpec::optional("hours", "number", "hours"),
            FieldSpec::optional("minutes", "number", "minutes"),
            FieldSpec::optional("seconds", "number", "seconds"),
            FieldSpec::optional("timezone", "text", TZ_DOC),
        ],
        "RFC 3339 date",
        date_add,
    ),
    CardSpec::pure(
        "date.format",
        "Formats a date",
        &[
            FieldSpec::required("date", "datetime", DATE_DOC),
            FieldSpec::optional(
                "format",
                "text",
                "strftime format such as `%Y-%m-%d %H:%M` (default RFC 3339)",
            ),
            FieldSpec::optional("timezone", "text", TZ_DOC),
        ],
        "the formatted text",
        date_format,
    ),
    CardSpec::pure(
        "date.parse",
        "Reads a date from text",
        &[
            TEXT,
            FieldSpec::optional(
                "format",
                "text",
                "strftime format of the text, such as `%d/%m/%Y %H:%M` (default: RFC 3339, RFC 2822 or a plain date)",
            ),
            FieldSpec::optional(
                "timezone",
                "text",
                "IANA zone of texts that carry no offset (default UTC)",
            ),
        ],
        "RFC 3339 date",
        date_parse,
    ),
    CardSpec::pure(
        "date.diff",
        "The time between two dates",
        &[
            FieldSpec::required("from", "datetime", DATE_DOC),
            FieldSpec::required("to", "datetime", DATE_DOC),
            FieldSpec::optional(
                "unit",
                "text",
                "`milliseconds`, `seconds` (default), `minutes`, `hours`, `days` or `weeks`",
            ),
        ],
        "whole units from `from` to `to`, rounded toward zero; negative when `to` is earlier",
        date_diff,
    ),
];

fn zone_field(input: &Fields<'_>) -> Result<Option<Zone>, CardError> {
    input
        .optional_text("timezone")?
        .map(|name| parse_timezone(&name).map_err(|err| invalid("timezone", err)))
        .transpose()
}

fn rfc3339(date: &DateTime<FixedOffset>, zone: Option<Zone>) -> PureResult {
    format_datetime(date, None, zone)
        .map(Value::String)
        .map_err(|err| invalid("date", err))
}

fn date_now(with: &With, ctx: &PureContext<'_>) -> PureResult {
    let zone = zone_field(&Fields::strict(with))?;
    rfc3339(&ctx.now.fixed_offset(), zone)
}

/// An exact amount of time given in `field` as a number of units of `unit_seconds`; zero when absent.
fn seconds_of(
    input: &Fields<'_>,
    field: &str,
    unit_seconds: f64,
) -> Result<chrono::Duration, CardError> {
    let Some(amount) = input.optional_number(field)? else {
        return Ok(chrono::Duration::zero());
    };
    let millis = (amount.as_f64().unwrap_or(f64::NAN) * unit_seconds * 1000.0).round();
    if !millis.is_finite() || millis.abs() > 1.0e15 {
        return Err(invalid(field, "is too large"));
    }
    Ok(chrono::Duration::milliseconds(millis as i64))
}

fn date_add(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let date = input.datetime("date")?;
    let zone = zone_field(&input)?;
    if ["amount", "days", "months", "hours", "minutes", "seconds"]
        .iter()
        .all(|field| input.value(field).is_none())
    {
        return Err(invalid(
            "amount",
            "is required (or give days, months, hours, minutes or seconds)",
        ));
    }
    let exact = input
        .optional_duration("amount")?
        .unwrap_or_else(chrono::Duration::zero)
        + seconds_of(&input, "hours", 3600.0)?
        + seconds_of(&input, "minutes", 60.0)?
        + seconds_of(&input, "seconds", 1.0)?;
    let months = input.optional_integer("months")?.unwrap_or(0);
    let days = input.optional_integer("days")?.unwrap_or(0);
    let out_of_range = || invalid("date", "the result is out of range");
    // Calendar units move in local time (so `days: 1` keeps 09:00 across a daylight saving change);
    // exact units are added afterwards.
    let shifted: DateTime<FixedOffset> = match zone {
        Some(ref zone) => calendar_shift(date.with_timezone(zone), months, days)
            .ok_or_else(out_of_range)?
            .fixed_offset(),
        None => calendar_shift(date, months, days).ok_or_else(out_of_range)?,
    };
    let result = shifted.checked_add_signed(exact).ok_or_else(out_of_range)?;
    rfc3339(&result, zone)
}

fn calendar_shift<Z: TimeZone>(date: DateTime<Z>, months: i64, days: i64) -> Option<DateTime<Z>> {
    let months_abs = chrono::Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    let date = if months >= 0 {
        date.checked_add_months(months_abs)?
    } else {
        date.checked_sub_months(months_abs)?
    };
    let days_abs = chrono::Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(days_abs)
    } else {
        date.checked_sub_days(days_abs)
    }
}

fn date_format(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let date = input.datetime("date")?;
    let zone = zone_field(&input)?;
    let format = input.optional_text("format")?;
    format_datetime(&date, format.as_deref(), zone)
        .map(Value::String)
        .map_err(|err| invalid("format", err))
}

fn date_parse(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let zone = zone_field(&input)?;
    let Some(format) = input.optional_text("format")? else {
        let date = parse_datetime(&Value::String(source.trim().to_owned()))
            .map_err(|err| invalid("text", err))?;
        return rfc3339(&date, None);
    };
    let source = source.trim();
    let mismatch = |err: chrono::ParseError| {
        invalid(
            "text",
            format!("\"{source}\" does not match format `{format}`: {err}"),
        )
    };
    // A format with an offset (`%z`) gives the instant directly; without one, the text is local time
    // in `timezone` (UTC by default); a format without a time means midnight.
    if let Ok(date) = DateTime::parse_from_str(source, &format) {
        return rfc3339(&date, None);
    }
    let naive = match NaiveDateTime::parse_from_str(source, &format) {
        Ok(naive) => naive,
        Err(err) => match NaiveDate::parse_from_str(source, &format) {
            Ok(date) => date.and_time(chrono::NaiveTime::MIN),
            Err(_) => return Err(mismatch(err)),
        },
    };
    let date = match zone {
        Some(zone) => zone
            .from_local_datetime(&naive)
            .earliest()
            .ok_or_else(|| {
                invalid(
                    "text",
                    format!("\"{source}\" does not exist in {zone} (daylight saving gap)"),
                )
            })?
            .fixed_offset(),
        None => Utc.from_utc_datetime(&naive).fixed_offset(),
    };
    rfc3339(&date, None)
}

fn date_diff(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let from = input.datetime("from")?;
    let to = input.datetime("to")?;
    let unit = input
        .optional_text("unit")?
        .unwrap_or(Cow::Borrowed("seconds"));
    let millis_per_unit: i64 = match unit.trim() {
        "milliseconds" | "ms" => 1,
        "seconds" | "s" => 1_000,
        "minutes" | "m" => 60_000,
        "hours" | "h" => 3_600_000,
        "days" | "d" => 86_400_000,
        "weeks" | "w" => 604_800_000,
        other => {
            return Err(invalid(
                "unit",
                format!(
                    "unknown unit `{other}`; expected milliseconds, seconds, minutes, hours, days or weeks"
                ),
            ));
        }
    };
    Ok(json!((to - from).num_milliseconds() / millis_per_unit))
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
    fn date_cards() {
        check("date.now", json!({}), Ok(json!("2024-03-30T09:00:00Z")));
        check(
            "date.now",
            json!({ "timezone": "Europe/Paris" }),
            Ok(json!("2024-03-30T10:00:00+01:00")),
        );
        check(
            "date.now",
            json!({ "timezone": "Mars/Base" }),
            Err("field `timezone`: unknown time zone `Mars/Base`"),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "amount": "1h30m" }),
            Ok(json!("2024-03-30T10:30:00Z")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "amount": "-24h" }),
            Ok(json!("2024-03-29T09:00:00Z")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00+02:00", "hours": -1.5 }),
            Ok(json!("2024-03-30T07:30:00+02:00")),
        );
        check(
            "date.add",
            json!({ "date": "2024-01-31", "months": 1 }),
            Ok(json!("2024-02-29T00:00:00Z")),
        );
        // Paris moves to summer time on 2024-03-31: one calendar day later is still 10:00 local.
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "days": 1, "timezone": "Europe/Paris" }),
            Ok(json!("2024-03-31T10:00:00+02:00")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "days": -2, "minutes": 5 }),
            Ok(json!("2024-03-28T09:05:00Z")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z" }),
            Err("field `amount`: is required"),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "amount": "soon" }),
            Err("field `amount`: expected a duration"),
        );
        check(
            "date.add",
            json!({ "date": "yesterday", "amount": "1h" }),
            Err("field `date`: expected a date such as"),
        );
        check(
            "date.add",
            json!({ "date": 0, "seconds": 61 }),
            Ok(json!("1970-01-01T00:01:01Z")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30T09:00:00Z", "format": "%d/%m/%Y %H:%M", "timezone": "America/New_York" }),
            Ok(json!("30/03/2024 05:00")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30T09:00:00.250Z" }),
            Ok(json!("2024-03-30T09:00:00.250Z")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30", "format": "%A %-d %B" }),
            Ok(json!("Saturday 30 March")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30", "format": "%Q" }),
            Err("field `format`: invalid date format `%Q`"),
        );
        check(
            "date.parse",
            json!({ "text": "30/03/2024 14:05", "format": "%d/%m/%Y %H:%M" }),
            Ok(json!("2024-03-30T14:05:00Z")),
        );
        check(
            "date.parse",
            json!({ "text": "30/03/2024 14:05", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris" }),
            Ok(json!("2024-03-30T14:05:00+01:00")),
        );
        check(
            "date.parse",
            json!({ "text": "30/03/2024", "format": "%d/%m/%Y" }),
            Ok(json!("2024-03-30T00:00:00Z")),
        );
        check(
            "date.parse",
            json!({ "text": "2024-03-30 14:05:00 +0200", "format": "%Y-%m-%d %H:%M:%S %z" }),
            Ok(json!("2024-03-30T14:05:00+02:00")),
        );
        check(
            "date.parse",
            json!({ "text": "Sat, 30 Mar 2024 09:00:00 GMT" }),
            Ok(json!("2024-03-30T09:00:00Z")),
        );
        check(
            "date.parse",
            json!({ "text": "2024-13-01", "format": "%Y-%m-%d" }),
            Err("does not match format"),
        );
        check(
            "date.diff",
            json!({ "from": "2024-03-01T00:00:00Z", "to": "2024-03-30T09:00:00Z", "unit": "days" }),
            Ok(json!(29)),
        );
        check(
            "date.diff",
            json!({ "from": "2024-03-30T09:00:00Z", "to": "2024-03-30T08:58:30Z", "unit": "minutes" }),
            Ok(json!(-1)),
        );
        check(
            "date.diff",
            json!({ "from": "2024-03-30T09:00:00Z", "to": "2024-03-30T09:00:01Z" }),
            Ok(json!(1)),
        );
        check(
            "date.diff",
            json!({ "from": 0, "to": 1, "unit": "fortnights" }),
            Err("field `unit`: unknown unit `fortnights`"),
        );
    }
}
