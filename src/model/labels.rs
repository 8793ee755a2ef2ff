//! Labels on datacenters and tenants, and the selectors that pick by them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::quoted;

/// A label key as a field name shows it: as it is when it is a plausible
/// key, quoted short and escaped when it is not.
fn key_shown(key: &str) -> String {
    if key.chars().count() <= 63 && !key.chars().any(char::is_control) {
        key.to_owned()
    } else {
        quoted(key)
    }
}

use super::FieldError;

/// Key/value labels, e.g. `region=eu`.
pub type Labels = BTreeMap<String, String>;

const MAX_LABELS: usize = 64;
/// The longest selector taken, in bytes: a selector is stored with every
/// claim, so an unbounded one would grow every later answer.
pub const MAX_SELECTOR_LEN: usize = 1024;
const MAX_LABEL_LEN: usize = 63;

fn label_part_ok(s: &str, allow_empty: bool) -> bool {
    (allow_empty || !s.is_empty())
        && s.len() <= MAX_LABEL_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// Checks label count and syntax: keys and values of up to 63 characters
/// from letters, digits, `-`, `_`, `.` and `/`; keys not empty.
pub fn validate_labels(field: &str, labels: &Labels) -> Result<(), FieldError> {
    if labels.len() > MAX_LABELS {
        return Err(FieldError::new(
            field,
            format!(
                "has {} labels, at most {MAX_LABELS} are allowed",
                labels.len()
            ),
        ));
    }
    for (k, v) in labels {
        if !label_part_ok(k, false) {
            return Err(FieldError::new(
                format!("{field}[{}]", key_shown(k)),
                "label keys are 1 to 63 letters, digits, '-', '_', '.' or '/'",
            ));
        }
        if !label_part_ok(v, true) {
            return Err(FieldError::new(
                format!("{field}[{}]", key_shown(k)),
                format!(
                    "value {}: label values are up to 63 letters, digits, '-', '_', '.' or '/'",
                    quoted(v)
                ),
            ));
        }
    }
    Ok(())
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    /// The key is set to one of these values.
    In(String, std::collections::BTreeSet<String>),
    /// The key is absent or set to none of these values.
    NotIn(String, std::collections::BTreeSet<String>),
}

/// The parts of a selector: split at commas outside parentheses, so that
/// `region in (eu,us)` stays one part. `None` when parentheses do not pair.
fn parts(text: &str) -> Option<Vec<&str>> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    (depth == 0).then(|| {
        out.push(&text[start..]);
        out
    })
}

/// Reads `key in (a,b)` or `key notin (a,b)`: (key, negated, values).
fn set_requirement(part: &str) -> Option<(&str, bool, Vec<&str>)> {
    let open = part.find('(')?;
    let inner = part[open + 1..].strip_suffix(')')?;
    let head = part[..open].trim_end();
    let (key, negated) = if let Some(k) = head.strip_suffix(" notin") {
        (k, true)
    } else if let Some(k) = head.strip_suffix(" in") {
        (k, false)
    } else {
        return None;
    };
    Some((
        key.trim(),
        negated,
        inner.split(',').map(str::trim).collect(),
    ))
}

/// A label selector such as `region=eu,tier!=edge,gpu,!legacy`; every
/// requirement must hold. The empty selector picks everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses a selector; `field` names it in errors.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(FieldError::new(
                field,
                format!(
                    "is {} bytes long, at most {MAX_SELECTOR_LEN} are allowed",
                    text.len()
                ),
            ));
        }
        let mut reqs = Vec::new();
        let Some(split) = parts(text) else {
            return Err(FieldError::new(
                field,
                format!("{}: parentheses do not pair", quoted(text)),
            ));
        };
        for part in split.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |why: &str| FieldError::new(field, format!("{}: {why}", quoted(part)));
            if part.contains('(') || part.contains(')') {
                let Some((key, negated, values)) = set_requirement(part) else {
                    return Err(bad("expected key in (v1,v2) or key notin (v1,v2)"));
                };
                if !label_part_ok(key, false) {
                    return Err(bad("keys are letters, digits, '-', '_', '.' or '/'"));
                }
                if values
                    .iter()
                    .any(|v| v.is_empty() || !label_part_ok(v, false))
                {
                    return Err(bad(
                        "a set lists one or more values of letters, digits, '-', '_', '.' or '/'",
                    ));
                }
                let values = values.into_iter().map(str::to_owned).collect();
                reqs.push(if negated {
                    Requirement::NotIn(key.to_owned(), values)
                } else {
                    Requirement::In(key.to_owned(), values)
                });
                continue;
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().to_owned())
            } else {
                Requirement::Exists(part.to_owned())
            };
            let (key, value) = match &req {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, Some(v)),
                Requirement::Exists(k) | Requirement::NotExists(k) => (k, None),
                Requirement::In(..) | Requirement::NotIn(..) => unreachable!("sets are read above"),
            };
            if !label_part_ok(key, false) {
                return Err(bad(
                    "expected key=value, key!=value, key or !key with keys of letters, digits, '-', '_', '.' or '/'",
                ));
            }
            if value.is_some_and(|v| !label_part_ok(v, true)) {
                return Err(bad(
                    "label values are letters, digits, '-', '_', '.' or '/'",
                ));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
        })
    }

    /// Whether this selector picks everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn join(values: &std::collections::BTreeSet<String>) -> String {
    values
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::Exists(k) => k.clone(),
                Requirement::NotExists(k) => format!("!{k}"),
                Requirement::In(k, values) => format!("{k} in ({})", join(values)),
                Requirement::NotIn(k, values) => format!("{k} notin ({})", join(values)),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl TryFrom<String> for Selector {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse("selector", &s)
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn edges_of_label_limits_and_selector_conversions() {
        let labels =
            |n: usize| -> Labels { (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect() };
        assert!(
            validate_labels("labels", &labels(MAX_LABELS)).is_ok(),
            "64 labels are fine"
        );
        assert!(validate_labels("labels", &labels(MAX_LABELS + 1)).is_err());
        let exact = format!("k={}", "v".repeat(MAX_SELECTOR_LEN - 2));
        assert_eq!(exact.len(), MAX_SELECTOR_LEN);
        // Too long a value for a label, but not for the selector bound.
        assert!(
            !Selector::parse("s", &exact)
                .unwrap_err()
                .reason
                .contains("bytes long")
        );
        let ok = Selector::parse("s", "region=eu,!legacy").unwrap();
        assert!(!ok.is_empty());
        assert!(Selector::parse("s", " , ").unwrap().is_empty());
        assert_eq!(String::from(ok.clone()), "region=eu,!legacy");
        assert_eq!(
            Selector::try_from("region=eu,!legacy".to_owned()).unwrap(),
            ok
        );
        assert!(Selector::try_from("bad key=1".to_owned()).is_err());
        // A plausible key shows as it is; a long or control-laden one quoted.
        assert_eq!(key_shown("tier"), "tier");
        assert_eq!(key_shown("a\u{1b}b"), "\"a\\u{1b}b\"");
        assert!(key_shown(&"k".repeat(64)).starts_with('"'));
        assert_eq!(key_shown(&"k".repeat(63)), "k".repeat(63));
    }

    #[test]
    fn set_requirements_pick_by_membership_and_round_trip() {
        let sel = Selector::parse("s", "region in (eu, us),tier notin (edge),gpu").unwrap();
        assert_eq!(sel.to_string(), "region in (eu,us),tier notin (edge),gpu");
        assert_eq!(Selector::parse("s", &sel.to_string()).unwrap(), sel);
        assert!(sel.matches(&labels(&[("region", "eu"), ("gpu", "")])));
        assert!(sel.matches(&labels(&[("region", "us"), ("tier", "core"), ("gpu", "a")])));
        assert!(
            !sel.matches(&labels(&[("region", "ap"), ("gpu", "")])),
            "not in the set"
        );
        assert!(!sel.matches(&labels(&[("gpu", "")])), "in needs the key");
        assert!(
            !sel.matches(&labels(&[("region", "eu"), ("tier", "edge"), ("gpu", "")])),
            "notin refuses a listed value"
        );
        assert!(
            Selector::parse("s", "tier notin (edge)")
                .unwrap()
                .matches(&labels(&[])),
            "notin takes an absent key"
        );
        for bad in [
            "region in (eu",
            "region in eu)",
            "region in ()",
            "region in (eu,,us)",
            "region within (eu)",
            "bad key in (eu)",
            "region in (e u)",
            "region in (eu) x",
        ] {
            let err = Selector::parse("selector", bad).unwrap_err();
            assert_eq!(err.field, "selector", "{bad}");
        }
    }

    #[test]
    fn a_selector_is_at_most_1_kib() {
        let part = "region=eu,";
        let just = part.repeat(MAX_SELECTOR_LEN / part.len());
        assert!(
            Selector::parse("selector", &just).is_ok(),
            "{} bytes",
            just.len()
        );
        let long = "a".repeat(MAX_SELECTOR_LEN + 1);
        let err = Selector::parse("selector", &long).unwrap_err();
        assert_eq!(err.field, "selector");
        assert_eq!(err.reason, "is 1025 bytes long, at most 1024 are allowed");
        let huge = part.repeat(400_000);
        assert!(
            Selector::parse("selector", &huge).is_err(),
            "4 MB of valid parts"
        );
    }

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selects_by_equality_inequality_and_presence() {
        let eu_core = labels(&[("region", "eu"), ("tier", "core")]);
        let eu_edge = labels(&[("region", "eu"), ("tier", "edge")]);
        let us = labels(&[("region", "us")]);
        let sel = Selector::parse("selector", "region=eu,tier!=edge").unwrap();
        assert!(sel.matches(&eu_core));
        assert!(!sel.matches(&eu_edge));
        assert!(!sel.matches(&us));
        let sel = Selector::parse("selector", "tier, !gpu").unwrap();
        assert!(sel.matches(&eu_core) && !sel.matches(&us));
        assert!(Selector::parse("s", "").unwrap().matches(&us));
        assert_eq!(
            Selector::parse("s", "a=b, c!=d,e,!f").unwrap().to_string(),
            "a=b,c!=d,e,!f"
        );
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in ["=eu", "region=e u", "re gion"] {
            let err = Selector::parse("spec.selector", bad).unwrap_err();
            assert_eq!(err.field, "spec.selector", "{bad}");
        }
    }

    #[test]
    fn validates_labels() {
        assert!(validate_labels("labels", &labels(&[("region", "eu")])).is_ok());
        let err = validate_labels("labels", &labels(&[("bad key", "x")])).unwrap_err();
        assert_eq!(err.field, "labels[bad key]");
    }
}
