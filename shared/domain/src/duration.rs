//! Durations as flow files write them: `500ms`, `5s`, `10m`, `1h30m`, `2d`.

use std::time::Duration;

/// Parses `500ms`, `5s`, `10m`, `2h`, `1d` and sums like `1h30m`. A bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(
            "expected a duration such as `30s`, `10m` or `1h30m`, got an empty value".into(),
        );
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "expected a duration such as `30s`, `10m` or `1h30m`, got `{text}`"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "unknown unit `{unit}` in duration `{text}`; expected ms, s, m, h or d"
                ));
            }
        };
        let millis = number
            .checked_mul(millis_per_unit)
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(|| format!("duration `{text}` is too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse`] reads it (`1h30m`, `250ms`).
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut seconds = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<u64, &str>) {
        let got = parse(text).map(|d| d.as_millis() as u64);
        match expected {
            Ok(ms) => assert_eq!(got, Ok(ms), "{text}"),
            Err(fragment) => {
                let err = got.expect_err(text);
                assert!(err.contains(fragment), "{text}: {err}");
            }
        }
    }

    #[test]
    fn parses_units_and_sums() {
        check("500ms", Ok(500));
        check("5s", Ok(5_000));
        check("10m", Ok(600_000));
        check("1h30m", Ok(5_400_000));
        check("2d", Ok(172_800_000));
        check("30", Ok(30_000));
        check("", Err("empty"));
        check("5x", Err("unknown unit `x`"));
        check("m", Err("expected a duration"));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h30m", "250ms", "10m", "1d2h", "45s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
