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

/// An IANA time zone by name (`UTC` included), surrounding spaces ignored.
pub fn parse_timezone(name: &str) -> Result<Zone, String> {
    name.trim().parse::<Zone>().map_err(|_| {
        format!("unknown time zone `{name}`; expected an IANA name such as Europe/Paris")
    })
}

/// An IANA time zone, with its rules from the time zone database bundled in the binary.
///
/// It implements chrono's [`TimeZone`], so dates stay `chrono` dates and `croner` works on them; the
/// rules come from `jiff`'s compact copy of the database (the zones' TZif data), which costs a
/// fraction of the size of `chrono-tz`'s generated tables in every Lambda binary.
#[derive(Clone, Debug)]
pub struct Zone {
    tz: jiff::tz::TimeZone,
}

/// Names the database holds that are not time zones a flow may name: `Factory` is zic's placeholder
/// for an unset zone (its abbreviation is `-00`), and the names a flow could use before the database
/// came from `jiff` did not include it.
const NOT_ZONES: &[&str] = &["Factory"];

impl Zone {
    /// Coordinated Universal Time.
    pub fn utc() -> Zone {
        Zone {
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// The zone's IANA name, exactly as a flow writes it.
    pub fn name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }

    /// Every zone name a flow may use, sorted, for did-you-mean suggestions.
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = jiff::tz::db()
            .available()
            .map(|name| name.as_str().to_owned())
            .filter(|name| !NOT_ZONES.contains(&name.as_str()))
            .collect();
        names.sort_unstable();
        names
    }

    /// The offset in effect at `instant`.
    fn at(&self, instant: jiff::Timestamp) -> ZoneOffset {
        ZoneOffset {
            zone: self.clone(),
            fixed: fixed(self.tz.to_offset(instant)),
            instant,
        }
    }

    /// The offset of a wall clock time at a transition, with the instant it names.
    fn local(&self, wall: jiff::civil::DateTime, offset: jiff::tz::Offset) -> ZoneOffset {
        // Far outside the database's range the instant saturates; only `%Z` reads it.
        let instant = offset.to_timestamp(wall).unwrap_or(if wall.year() < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        ZoneOffset {
            zone: self.clone(),
            fixed: fixed(offset),
            instant,
        }
    }
}

impl std::str::FromStr for Zone {
    type Err = UnknownZone;

    /// Names are exact, as with `chrono-tz` before: the database's lookup ignores case, so a name
    /// is accepted only when it is the zone's own spelling (`europe/paris` is not a zone name).
    fn from_str(name: &str) -> Result<Zone, UnknownZone> {
        match jiff::tz::TimeZone::get(name) {
            Ok(tz) if tz.iana_name() == Some(name) && !NOT_ZONES.contains(&name) => Ok(Zone { tz }),
            _ => Err(UnknownZone),
        }
    }
}

/// A name that is not an IANA time zone name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an IANA time zone name")]
pub struct UnknownZone;

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name() == other.name()
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The offset of a [`Zone`] at one instant. It displays as the zone's abbreviation then (`CEST`,
/// `+04`), which is what `%Z` prints.
#[derive(Clone, Debug)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
    instant: jiff::Timestamp,
}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl std::fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.zone.tz.to_offset_info(self.instant).abbreviation())
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Zone {
        offset.zone.clone()
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> chrono::LocalResult<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> chrono::LocalResult<ZoneOffset> {
        use jiff::tz::AmbiguousOffset;
        let wall = civil(local);
        match self.tz.to_ambiguous_timestamp(wall).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                chrono::LocalResult::Single(self.local(wall, offset))
            }
            // The earlier instant first, as chrono orders the two readings of a repeated time.
            AmbiguousOffset::Fold { before, after } => {
                chrono::LocalResult::Ambiguous(self.local(wall, before), self.local(wall, after))
            }
            AmbiguousOffset::Gap { .. } => chrono::LocalResult::None,
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let utc = utc.and_utc();
        // chrono's range is wider than the database's (years -9999 to 9999): beyond it the offset
        // of the range's end holds, as the zone's last rule would.
        let instant = jiff::Timestamp::new(utc.timestamp(), 0).unwrap_or(if utc.timestamp() < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        });
        self.at(instant)
    }
}

/// A jiff offset as chrono's. Offsets in the database are within ±15 hours, well inside chrono's
/// range (less than a day); the clamp only keeps the conversion total.
fn fixed(offset: jiff::tz::Offset) -> FixedOffset {
    FixedOffset::east_opt(offset.seconds().clamp(-86_399, 86_399))
        .unwrap_or_else(|| unreachable!("the offset was clamped to chrono's range"))
}

/// A chrono wall clock time as jiff's, clamped to jiff's years (-9999 to 9999). The offset of a time
/// does not depend on its fraction of a second, so that is left out (chrono's leap second, a
/// fraction of 1.0 or more, has no jiff equivalent).
fn civil(local: &NaiveDateTime) -> jiff::civil::DateTime {
    use chrono::{Datelike, Timelike};
    let small = |value: u32| i8::try_from(value).unwrap_or(i8::MAX);
    if local.year() < -9999 {
        return jiff::civil::DateTime::MIN;
    }
    match i16::try_from(local.year()) {
        Ok(year) if year <= 9999 => jiff::civil::DateTime::new(
            year,
            small(local.month()),
            small(local.day()),
            small(local.hour()),
            small(local.minute()),
            small(local.second()),
            0,
        )
        .unwrap_or(jiff::civil::DateTime::MAX),
        _ => jiff::civil::DateTime::MAX,
    }
}

/// Formats a date with strftime (`None`: RFC 3339), in `zone` or its own offset. An invalid format is
/// an error, never a panic.
pub fn format_datetime(
    date: &DateTime<FixedOffset>,
    format: Option<&str>,
    zone: Option<Zone>,
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

/// `time` as RFC 3339 in UTC with `Z`, with the fractional digits `format` says: exactly the text
/// chrono's `to_rfc3339_opts(format, true)` writes. Written by hand because chrono writes it through
/// `core::fmt` piece by piece: callgrind under `bench/instructions.sh` counted about 3,000
/// instructions per time there, for the half-dozen times every run stores (its own, its steps'),
/// against about 200 here. Years outside 0000–9999 and leap seconds go to chrono.
pub fn rfc3339_utc(time: DateTime<chrono::Utc>, format: SecondsFormat) -> String {
    use chrono::{Datelike, Timelike};
    let naive = time.naive_utc();
    let year = naive.year();
    let nanos = naive.nanosecond();
    let Ok(year) = u32::try_from(year) else {
        return time.to_rfc3339_opts(format, true);
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return time.to_rfc3339_opts(format, true);
    }
    let digits = match format {
        SecondsFormat::Secs => 0,
        SecondsFormat::Millis => 3,
        SecondsFormat::Micros => 6,
        SecondsFormat::Nanos => 9,
        // AutoSi, and any format chrono adds later: as few digits as keep the value.
        _ if nanos == 0 => 0,
        _ if nanos.is_multiple_of(1_000_000) => 3,
        _ if nanos.is_multiple_of(1_000) => 6,
        _ => 9,
    };
    let mut text = [0u8; 30];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut value = value;
        for slot in text[at..at + width].iter_mut().rev() {
            // `value % 10` is a digit, so the cast keeps it whole.
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, naive.month(), 2);
    put(8, naive.day(), 2);
    put(11, naive.hour(), 2);
    put(14, naive.minute(), 2);
    put(17, naive.second(), 2);
    let mut end = 19;
    if digits > 0 {
        put(20, nanos / 10u32.pow(9 - digits), digits as usize);
        end = 20 + digits as usize;
    }
    for (at, byte) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        text[at] = byte;
    }
    text[end] = b'Z';
    // ASCII digits and separators only, so the text is UTF-8.
    std::str::from_utf8(&text[..=end])
        .map(str::to_owned)
        .unwrap_or_else(|_| time.to_rfc3339_opts(format, true))
}

/// Serialises a time as chrono does (RFC 3339, as many fractional digits as keep it, `Z`), through
/// [`rfc3339_utc`]; for `#[serde(serialize_with)]`.
pub fn serialize_utc<S: serde::Serializer>(
    time: &DateTime<chrono::Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339_utc(*time, SecondsFormat::AutoSi))
}

#[cfg(test)]
mod tests {
    use chrono::{LocalResult, NaiveDate, Offset as _, TimeZone as _, Utc};

    use super::*;

    fn zone(name: &str) -> Zone {
        name.parse().unwrap_or_else(|_| panic!("{name} is a zone"))
    }

    #[test]
    fn zone_names_are_exact_iana_names() {
        for name in [
            "Europe/Paris",
            "UTC",
            "Etc/UTC",
            "US/Eastern",
            "America/Argentina/Salta",
        ] {
            assert_eq!(zone(name).to_string(), name);
        }
        // The database's lookup ignores case; flows do not (as with chrono-tz before).
        for name in [
            "europe/paris",
            "EUROPE/PARIS",
            "utc",
            " Europe/Paris",
            "Factory",
            "",
            "Mars/Base",
        ] {
            assert_eq!(name.parse::<Zone>(), Err(UnknownZone), "{name:?}");
        }
        assert_eq!(
            parse_timezone(" Europe/Paris ").map(|z| z.to_string()),
            Ok("Europe/Paris".into())
        );
        assert!(parse_timezone("europe/paris").is_err());
    }

    #[test]
    fn every_listed_name_is_accepted_and_the_list_is_sorted() {
        let names = Zone::names();
        assert!(names.len() > 400, "{}", names.len());
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(!names.iter().any(|name| name == "Factory"));
        for name in &names {
            assert_eq!(zone(name).name(), name);
        }
    }

    #[test]
    fn wall_clock_times_in_gaps_and_folds() {
        let paris = zone("Europe/Paris");
        let wall = |d: u32, m: u32, h: u32, min: u32| {
            NaiveDate::from_ymd_opt(2024, m, d)
                .and_then(|date| date.and_hms_opt(h, min, 0))
                .expect("a valid wall clock time")
        };
        // Clocks go forward at 02:00 on 31 March 2024: 02:30 does not exist.
        assert!(matches!(
            paris.from_local_datetime(&wall(31, 3, 2, 30)),
            LocalResult::None
        ));
        // Clocks go back at 03:00 on 27 October 2024: 02:30 happens twice, summer time first.
        match paris.from_local_datetime(&wall(27, 10, 2, 30)) {
            LocalResult::Ambiguous(first, second) => {
                assert_eq!(first.to_rfc3339(), "2024-10-27T02:30:00+02:00");
                assert_eq!(second.to_rfc3339(), "2024-10-27T02:30:00+01:00");
                assert!(first < second);
            }
            other => panic!("expected two readings, got {other:?}"),
        }
        let single = paris
            .from_local_datetime(&wall(1, 7, 12, 0))
            .single()
            .expect("one reading");
        assert_eq!(
            single.with_timezone(&Utc).to_rfc3339(),
            "2024-07-01T10:00:00+00:00"
        );
        assert_eq!(single.offset().fix().local_minus_utc(), 7200);
    }

    #[test]
    fn percent_z_prints_the_zone_abbreviation() {
        let date = DateTime::parse_from_rfc3339("2024-07-01T12:00:00Z").expect("a date");
        let format = |name: &str| format_datetime(&date, Some("%H:%M %Z"), Some(zone(name)));
        assert_eq!(format("Europe/Paris"), Ok("14:00 CEST".into()));
        assert_eq!(format("America/New_York"), Ok("08:00 EDT".into()));
        assert_eq!(format("Asia/Dubai"), Ok("16:00 +04".into()));
        assert_eq!(format("Asia/Kolkata"), Ok("17:30 IST".into()));
        assert_eq!(format("UTC"), Ok("12:00 UTC".into()));
    }

    #[test]
    fn dates_beyond_the_database_years_keep_the_last_rule() {
        let paris = zone("Europe/Paris");
        let far = NaiveDate::from_ymd_opt(200_000, 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .expect("a chrono date");
        assert_eq!(
            paris.offset_from_utc_datetime(&far).fix().local_minus_utc(),
            3600
        );
        assert!(matches!(
            paris.from_local_datetime(&far),
            LocalResult::Single(_)
        ));
        let before = NaiveDate::from_ymd_opt(-200_000, 1, 1)
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .expect("a chrono date");
        let _ = paris.offset_from_utc_datetime(&before).to_string();
        let _ = paris.from_local_datetime(&before);
    }

    #[test]
    fn times_are_written_exactly_as_chrono_writes_them() {
        use chrono::Utc;
        let formats = [
            SecondsFormat::Secs,
            SecondsFormat::Millis,
            SecondsFormat::Micros,
            SecondsFormat::Nanos,
            SecondsFormat::AutoSi,
        ];
        // Times spread over the years 0000–9999 with every kind of fraction (none, millis, micros,
        // nanos), from a fixed-seed generator, and the edges.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        for round in 0..4000u64 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let seconds = i64::try_from(seed % 315_537_897_600).expect("fits") - 62_167_219_200;
            let nanos = u32::try_from((seed >> 20) % 1_000_000_000).expect("fits");
            let nanos = match round % 4 {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            times.push(DateTime::from_timestamp(seconds, nanos).expect("a time"));
        }
        times.push(DateTime::<Utc>::MIN_UTC);
        times.push(DateTime::<Utc>::MAX_UTC);
        times.push(DateTime::from_timestamp(-62_167_219_201, 5).expect("the year -1"));
        times.push(DateTime::from_timestamp(253_402_300_800, 0).expect("the year 10000"));
        times.push(DateTime::from_timestamp(1_483_228_799, 1_500_000_000).expect("a leap second"));
        for time in times {
            for format in formats {
                assert_eq!(
                    rfc3339_utc(time, format),
                    time.to_rfc3339_opts(format, true),
                    "{time:?} {format:?}"
                );
            }
        }
    }
}
