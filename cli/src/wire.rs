//! Reading wire messages for people: enum names as lower-case words, maps in
//! key order, times as ages.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use theia::api::v1;

/// A datacenter's liveness: `alive`, `suspect` or `down`.
pub fn liveness_name(value: i32) -> &'static str {
    match v1::Liveness::try_from(value) {
        Ok(v1::Liveness::Alive) => "alive",
        Ok(v1::Liveness::Suspect) => "suspect",
        Ok(v1::Liveness::Down) => "down",
        Ok(v1::Liveness::Unspecified) | Err(_) => "unknown",
    }
}

/// A claim's state: `pending`, `placed`, `active`, `failed`, `released` or
/// `expired`.
pub fn state_name(value: i32) -> &'static str {
    match v1::ClaimState::try_from(value) {
        Ok(v1::ClaimState::Pending) => "pending",
        Ok(v1::ClaimState::Expired) => "expired",
        Ok(v1::ClaimState::Placed) => "placed",
        Ok(v1::ClaimState::Active) => "active",
        Ok(v1::ClaimState::Failed) => "failed",
        Ok(v1::ClaimState::Released) => "released",
        Ok(v1::ClaimState::Unspecified) | Err(_) => "unknown",
    }
}

/// A strategy: `binpack` or `spread`; unspecified means the default, binpack.
pub fn strategy_name(value: i32) -> &'static str {
    match v1::Strategy::try_from(value) {
        Ok(v1::Strategy::Binpack | v1::Strategy::Unspecified) => "binpack",
        Ok(v1::Strategy::Spread) => "spread",
        Ok(v1::Strategy::RoundRobin) => "round-robin",
        Err(_) => "unknown",
    }
}

/// A wire map in key order.
pub fn sorted(map: &HashMap<String, String>) -> BTreeMap<&str, &str> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A map as `k=v,k2=v2` in key order, or `-` when empty.
pub fn kv_text(map: &HashMap<String, String>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    sorted(map)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Text or `-` when empty.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// A wire quantity of `class` in a table's short form (`23.5Gi`); text the
/// CLI cannot read back is shown as it came.
pub fn short_quantity(class: &str, text: &str) -> String {
    match (
        theia::model::ResourceClass::parse(class),
        theia::model::parse_quantity(text),
    ) {
        (Ok(class), Ok(amount)) => class.format_short(amount),
        _ => or_dash(text),
    }
}

/// A list as `a,b`, or `-` when empty.
pub fn list_text(items: &[String]) -> String {
    or_dash(&items.join(","))
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The wall clock in Unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long ago a Unix-milliseconds time was, e.g. `4s`, `3m`, `2h`, `5d`;
/// `never` for 0.
pub fn age(unix_ms: i64) -> String {
    age_at(unix_ms, now_ms())
}

fn age_at(unix_ms: i64, now_ms: i64) -> String {
    if unix_ms <= 0 {
        return "never".to_owned();
    }
    span((now_ms - unix_ms).max(0) / 1000)
}

/// A number of seconds, short: `42s`, `10m`, `3h`, `3d`.
pub fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_are_words() {
        assert_eq!(liveness_name(v1::Liveness::Suspect as i32), "suspect");
        assert_eq!(state_name(v1::ClaimState::Released as i32), "released");
        assert_eq!(strategy_name(v1::Strategy::Spread as i32), "spread");
        assert_eq!(
            strategy_name(v1::Strategy::RoundRobin as i32),
            "round-robin"
        );
        assert_eq!(strategy_name(0), "binpack");
        assert_eq!(liveness_name(42), "unknown");
        assert_eq!(state_name(1), "pending");
        assert_eq!(state_name(5), "expired");
        assert_eq!(state_name(42), "unknown");
    }

    #[test]
    fn maps_print_in_key_order() {
        let m: HashMap<String, String> = [("b", "2"), ("a", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(kv_text(&m), "a=1,b=2");
        assert_eq!(kv_text(&HashMap::new()), "-");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age_at(0, 5_000), "never");
        assert_eq!(age_at(1_000, 5_500), "4s");
        assert_eq!(age_at(1, 1 + 10 * 60_000), "10m");
        assert_eq!(age_at(1, 1 + 3 * 3_600_000), "3h");
        assert_eq!(age_at(1, 1 + 3 * 86_400_000), "3d");
        assert_eq!(age_at(10_000, 5_000), "0s");
    }
}
