use std::fmt;

/// The longest part of a caller's value an error message repeats.
const QUOTED_CHARS: usize = 40;

/// `text` as an error message may repeat it: quoted, control characters
/// escaped, and cut to its first 40 characters (saying how long it was), so
/// that a huge or hostile value can neither flood a message nor a terminal.
pub fn quoted(text: &str) -> String {
    let count = text.chars().count();
    if count <= QUOTED_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(QUOTED_CHARS).collect();
    format!("{head:?}… ({count} characters)")
}

/// A rejected input: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// The field as the caller named it, e.g. `spec.resources[compute.vcpu]`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, with `prefix.` put before the field name.
    #[must_use]
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_owned()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[cfg(test)]
mod quoted_tests {
    use super::quoted;

    #[test]
    fn a_field_error_reads_field_then_reason() {
        let e = super::FieldError::new("count", "must be at least 1").within("spec");
        assert_eq!(e.to_string(), "spec.count: must be at least 1");
    }

    #[test]
    fn values_are_quoted_escaped_and_cut_short() {
        assert_eq!(quoted("dc-1"), "\"dc-1\"");
        assert_eq!(
            quoted("a\u{1b}[2Jb"),
            "\"a\\u{1b}[2Jb\"",
            "escapes stay escaped"
        );
        let long = "x".repeat(1_000_000);
        let q = quoted(&long);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with("… (1000000 characters)"), "{q}");
        assert_eq!(quoted(&"é".repeat(40)), format!("{:?}", "é".repeat(40)));
    }
}
