use super::{FieldError, quoted};

/// The longest name of a tenant, profile or datacenter.
pub const MAX_NAME_LEN: usize = 63;

/// Checks an object name: 1 to 63 characters of lower-case ASCII letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit.
pub fn validate_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FieldError::new(
            field,
            format!(
                "is {} characters long, at most {MAX_NAME_LEN} are allowed",
                name.len()
            ),
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    if let Some(bad) = name.chars().find(|c| !ok_char(*c)) {
        return Err(FieldError::new(
            field,
            format!(
                "{} contains {bad:?}; use lower-case letters, digits, '-', '_' and '.'",
                quoted(name)
            ),
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(FieldError::new(
            field,
            format!("{} must start and end with a letter or digit", quoted(name)),
        ));
    }
    Ok(())
}

/// Checks a client's request id: up to 128 printable ASCII characters, or empty.
pub fn validate_request_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.len() > 128 {
        return Err(FieldError::new(
            field,
            format!("is {} characters long, at most 128 are allowed", id.len()),
        ));
    }
    if id.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(FieldError::new(
            field,
            "must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_hold_exactly_at_their_edges() {
        let at = "a".repeat(MAX_NAME_LEN);
        assert!(validate_name("n", &at).is_ok(), "63 characters are fine");
        let over = "a".repeat(MAX_NAME_LEN + 1);
        assert!(validate_name("n", &over).is_err());
        assert!(validate_request_id("r", &"x".repeat(128)).is_ok());
        let err = validate_request_id("r", &"x".repeat(129)).unwrap_err();
        assert_eq!(
            err.reason,
            "is 129 characters long, at most 128 are allowed"
        );
        assert!(validate_request_id("r", "").is_ok(), "no request id");
        assert!(validate_request_id("r", "retry-1/a.b").is_ok());
        for bad in ["with space", "tab\t", "é"] {
            let err = validate_request_id("r", bad).unwrap_err();
            assert_eq!(
                err.reason, "must be printable ASCII without spaces",
                "{bad:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["acme", "m.large", "dc-ams-1", "a", "team_7"] {
            validate_name("name", n).unwrap();
        }
    }

    #[test]
    fn rejects_bad_names_naming_the_field() {
        let long = "a".repeat(64);
        for (n, why) in [
            ("", "empty"),
            (long.as_str(), "at most 63"),
            ("Acme", "'A'"),
            ("bad name", "' '"),
            ("-acme", "start and end"),
            ("acme.", "start and end"),
        ] {
            let err = validate_name("tenant.name", n).unwrap_err();
            assert_eq!(err.field, "tenant.name");
            assert!(err.reason.contains(why), "{n:?}: {err}");
        }
    }
}
