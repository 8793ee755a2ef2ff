//! Quantities in human units: `64`, `1.5k`, `256Gi`, `4Ti`, `10G`.

use super::{UnitKind, quoted};

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Nothing was given.
    #[error("is empty; expected a number such as 64, 256Gi or 10G")]
    Empty,
    /// Not a number with an optional suffix.
    #[error(
        "{0:?} is not a quantity; expected a whole number with an optional suffix (k M G T P E, or Ki Mi Gi Ti Pi Ei)"
    )]
    Syntax(String),
    /// An unknown suffix.
    #[error(
        "{} has unknown unit {}; use k M G T P E (powers of 1000) or Ki Mi Gi Ti Pi Ei (powers of 1024)",
        quoted(input),
        quoted(suffix)
    )]
    Unit {
        /// The whole input.
        input: String,
        /// The suffix that was not understood.
        suffix: String,
    },
    /// A fraction that does not come out whole in base units.
    #[error("{0:?} is not a whole number of base units")]
    Fraction(String),
    /// Larger than 2^64 - 1 base units.
    #[error("{0:?} is too large")]
    Overflow(String),
}

const DECIMAL: [(&str, u128); 6] = [
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

const BINARY: [(&str, u128); 6] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
];

fn multiplier(suffix: &str) -> Option<u128> {
    if suffix.is_empty() {
        return Some(1);
    }
    // "K" is a common spelling of kilo; accept it too.
    let suffix = if suffix == "K" { "k" } else { suffix };
    DECIMAL
        .iter()
        .chain(BINARY.iter())
        .find(|(s, _)| *s == suffix)
        .map(|(_, m)| *m)
}

/// Parses a quantity into base units (a count, bytes or bit/s). A trailing
/// `B` after a suffix is allowed (`256GiB`); fractions must come out whole
/// (`1.5Ki` is 1536, `1.5` is refused).
pub fn parse_quantity(input: &str) -> Result<u64, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let suffix = suffix.trim();
    let suffix = suffix
        .strip_suffix('B')
        .filter(|rest| !rest.is_empty())
        .unwrap_or(suffix);
    let number: String = number.chars().filter(|c| *c != '_').collect();
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number.as_str(), ""),
    };
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(QuantityError::Syntax(input.to_owned()));
    }
    let mult = multiplier(suffix).ok_or_else(|| QuantityError::Unit {
        input: input.to_owned(),
        suffix: suffix.to_owned(),
    })?;
    let overflow = || QuantityError::Overflow(input.to_owned());
    if frac.len() > 18 {
        return Err(QuantityError::Fraction(input.to_owned()));
    }
    let digits = format!("{whole}{frac}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| overflow())?
    };
    let scale = 10u128.pow(frac.len() as u32);
    let scaled = mantissa.checked_mul(mult).ok_or_else(overflow)?;
    if scaled % scale != 0 {
        return Err(QuantityError::Fraction(input.to_owned()));
    }
    u64::try_from(scaled / scale).map_err(|_| overflow())
}

/// Prints base units the way a person would type them for this kind of unit:
/// bytes with binary suffixes, rates with decimal ones, counts as they are.
/// Only exact forms are used, so printing then parsing gives the same number.
pub fn format_quantity(value: u64, kind: UnitKind) -> String {
    // The class's own suffixes first, then the other kind: `10Gi` of
    // bandwidth stays `10Gi` rather than eleven digits.
    let tables: [&[(&str, u128)]; 2] = match kind {
        UnitKind::Count => return value.to_string(),
        UnitKind::Bytes => [&BINARY, &DECIMAL],
        UnitKind::BitsPerSecond => [&DECIMAL, &BINARY],
    };
    let v = u128::from(value);
    for table in tables {
        for (suffix, mult) in table.iter().rev() {
            if v >= *mult && v % mult == 0 {
                return format!("{}{suffix}", v / mult);
            }
        }
    }
    value.to_string()
}

/// A short form for tables: the exact form when it is short (`256Gi`,
/// `64`), otherwise about three significant figures in the class's units
/// (`23.5Gi`, `1.25M`). Not meant to be parsed back exactly.
pub fn format_quantity_short(value: u64, kind: UnitKind) -> String {
    let exact = format_quantity(value, kind);
    if exact.len() <= 6 {
        return exact;
    }
    let table: &[(&str, u128)] = match kind {
        UnitKind::Bytes => &BINARY,
        UnitKind::Count | UnitKind::BitsPerSecond => &DECIMAL,
    };
    let v = u128::from(value);
    let Some((suffix, mult)) = table.iter().rev().find(|(_, m)| v >= *m) else {
        return exact;
    };
    let scaled = value as f64 / *mult as f64;
    let digits = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{scaled:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_units_people_type() {
        let cases: &[(&str, u64)] = &[
            ("64", 64),
            ("256Gi", 256 << 30),
            ("256GiB", 256 << 30),
            ("4Ti", 4 << 40),
            ("10G", 10_000_000_000),
            ("1.5Ki", 1536),
            ("2k", 2000),
            ("2K", 2000),
            (" 7 ", 7),
            ("1_000", 1000),
            ("0", 0),
        ];
        for (s, v) in cases {
            assert_eq!(parse_quantity(s), Ok(*v), "{s}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        assert_eq!(parse_quantity(""), Err(QuantityError::Empty));
        assert!(matches!(
            parse_quantity("-5"),
            Err(QuantityError::Syntax(_))
        ));
        assert!(matches!(
            parse_quantity("abc"),
            Err(QuantityError::Syntax(_))
        ));
        assert!(matches!(
            parse_quantity("10Xi"),
            Err(QuantityError::Unit { .. })
        ));
        assert!(matches!(
            parse_quantity("1.5"),
            Err(QuantityError::Fraction(_))
        ));
        assert!(matches!(
            parse_quantity("20Ei"),
            Err(QuantityError::Overflow(_))
        ));
        assert!(
            parse_quantity("10Xi")
                .unwrap_err()
                .to_string()
                .contains("Gi")
        );
    }

    #[test]
    fn prints_in_the_unit_of_the_class() {
        assert_eq!(format_quantity(256 << 30, UnitKind::Bytes), "256Gi");
        assert_eq!(format_quantity(1536, UnitKind::Bytes), "1536");
        assert_eq!(format_quantity(10 << 30, UnitKind::BitsPerSecond), "10Gi");
        assert_eq!(format_quantity(5_000_000_000, UnitKind::Bytes), "5G");
        assert_eq!(
            format_quantity(10_000_000_000, UnitKind::BitsPerSecond),
            "10G"
        );
        assert_eq!(format_quantity(512, UnitKind::Count), "512");
        assert_eq!(format_quantity(0, UnitKind::Bytes), "0");
    }

    #[test]
    fn short_forms_are_readable() {
        assert_eq!(
            format_quantity_short(24_684_084 << 10, UnitKind::Bytes),
            "23.5Gi"
        );
        assert_eq!(format_quantity_short(256 << 30, UnitKind::Bytes), "256Gi");
        assert_eq!(format_quantity_short(1_234_567, UnitKind::Count), "1.23M");
        assert_eq!(format_quantity_short(64, UnitKind::Count), "64");
        assert_eq!(
            format_quantity_short(10_000_000_001, UnitKind::BitsPerSecond),
            "10G"
        );
        assert_eq!(format_quantity_short(3 << 40, UnitKind::Bytes), "3Ti");
    }

    proptest! {
        #[test]
        fn printing_then_parsing_is_exact(v in any::<u64>(), kind in prop_oneof![Just(UnitKind::Count), Just(UnitKind::Bytes), Just(UnitKind::BitsPerSecond)]) {
            prop_assert_eq!(parse_quantity(&format_quantity(v, kind)), Ok(v));
        }
    }
}
