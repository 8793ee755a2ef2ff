//! Instants and lengths of time as typed on a command line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant as Unix ms: RFC 3339 in UTC or with an offset, with or
/// without seconds (`2026-12-01T00:00Z`, `2026-12-01T00:00:00+01:00`), a
/// date alone for its midnight UTC (`2026-12-01`), `now`, or `+LENGTH`
/// from now (`+90s`, `+2h`, `+7d`).
pub fn parse_instant(text: &str) -> Result<u64, String> {
    parse_instant_at(text, now_ms())
}

fn parse_instant_at(text: &str, now: u64) -> Result<u64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Some(rest) = text.strip_prefix('+') {
        let length = parse_length(rest).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(now.saturating_add(length));
    }
    let normal = normalise(text).ok_or_else(|| {
        format!(
            "{text:?} is not a time: use RFC 3339 like 2026-12-01T00:00Z, a date like 2026-12-01, now, or +LENGTH like +2h"
        )
    })?;
    let t = humantime::parse_rfc3339(&normal).map_err(|e| format!("{text:?}: {e}"))?;
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?
        .as_millis();
    u64::try_from(ms).map_err(|_| format!("{text:?} is too far away"))
}

/// RFC 3339 in UTC with seconds, as humantime reads it, from the forms
/// [`parse_instant`] accepts; `None` when it is none of them.
fn normalise(text: &str) -> Option<String> {
    let text = text.replace(' ', "T");
    let (date, time) = match text.split_once(['T', 't']) {
        Some((d, t)) => (d.to_owned(), t.to_owned()),
        None => (text.clone(), "00:00:00Z".to_owned()),
    };
    if date.len() != 10 || !date.chars().all(|c| c.is_ascii_digit() || c == '-') {
        return None;
    }
    // Split the zone off: Z, or ±HH:MM.
    let (clock, offset_min) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock.to_owned(), 0i64)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
        (clock.to_owned(), sign * minutes)
    };
    let clock = match clock.matches(':').count() {
        1 => format!("{clock}:00"),
        2 => clock,
        _ => return None,
    };
    let utc = humantime::parse_rfc3339(&format!("{date}T{clock}Z")).ok()?;
    let shift = Duration::from_secs(offset_min.unsigned_abs() * 60);
    // 12:00+01:00 is 11:00 UTC.
    let utc = if offset_min >= 0 {
        utc.checked_sub(shift)?
    } else {
        utc.checked_add(shift)?
    };
    Some(humantime::format_rfc3339_millis(utc).to_string())
}

/// An instant as [`parse_instant`] reads it, or `-LENGTH` before now
/// (`-1h`): for looking back.
pub fn parse_past_instant(text: &str) -> Result<u64, String> {
    match text.trim().strip_prefix('-') {
        Some(rest) => {
            let length = parse_length(rest).map_err(|e| format!("{text:?}: {e}"))?;
            Ok(now_ms().saturating_sub(length))
        }
        None => parse_instant(text).map_err(|e| e.replace("+LENGTH like +2h", "-LENGTH like -1h")),
    }
}

/// A length of time in ms, like `90s`, `15m`, `2h`, `7d` or `1h30m`.
pub fn parse_length(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a length of time like 90s, 2h or 7d: {e}"))?;
    if d.is_zero() {
        return Err("a length of time must be above zero".to_owned());
    }
    u64::try_from(d.as_millis()).map_err(|_| format!("{text:?} is too long"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEC_1: u64 = 1_796_083_200_000;

    #[test]
    fn instants_read_in_every_documented_form() {
        for text in [
            "2026-12-01T00:00Z",
            "2026-12-01T00:00:00Z",
            "2026-12-01",
            "2026-12-01 00:00Z",
            "2026-12-01T01:00+01:00",
            "2026-11-30T19:00:00-05:00",
        ] {
            assert_eq!(parse_instant_at(text, 0), Ok(DEC_1), "{text}");
        }
        assert_eq!(
            parse_instant_at("2026-12-01T00:00:01.5Z", 0),
            Ok(DEC_1 + 1_500)
        );
        assert_eq!(parse_instant_at("now", 42), Ok(42));
        assert_eq!(parse_instant_at("+2h", 1_000), Ok(1_000 + 7_200_000));
        assert_eq!(parse_instant_at("+7d", 0), Ok(7 * 86_400_000));
    }

    #[test]
    fn wrong_instants_say_what_is_accepted() {
        for text in [
            "tomorrow",
            "2026-13-01",
            "2026-12-01T25:00Z",
            "12/01/2026",
            "2026-12-01T00Z",
            "+soon",
        ] {
            let e = parse_instant_at(text, 0).unwrap_err();
            assert!(e.contains(text), "{text}: {e}");
        }
        assert!(
            parse_instant_at("tomorrow", 0)
                .unwrap_err()
                .contains("2026-12-01T00:00Z")
        );
    }

    #[test]
    fn lengths_read_as_ms() {
        assert_eq!(parse_length("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_length("1h30m"), Ok(5_400_000));
        assert_eq!(parse_length("500ms"), Ok(500));
        assert!(parse_length("0s").unwrap_err().contains("above zero"));
        assert!(parse_length("a week").is_err());
    }
}
