//! When a claim holds capacity: a window `[start, end)` in Unix
//! milliseconds, and the timing a client asks for, from which the manager
//! resolves the window at the moment it decides.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// The longest a window may last when it is given an end: a hundred years
/// of milliseconds, far beyond any plan and far below overflow.
pub const MAX_WINDOW_MS: u64 = 100 * 366 * 24 * 3600 * 1000;

/// A span of time `[start, end)`, in Unix milliseconds; no end means until
/// released. A window that ends at T and one that starts at T do not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The first instant it holds.
    pub start: u64,
    /// The first instant it no longer holds; `None`: until released.
    pub end: Option<u64>,
}

impl Window {
    /// From `start` until released.
    pub fn from(start: u64) -> Self {
        Self { start, end: None }
    }

    /// From the start of time until released: claims made before windows.
    pub fn always() -> Self {
        Self::from(0)
    }

    /// `[start, end)`.
    pub fn between(start: u64, end: u64) -> Self {
        Self {
            start,
            end: Some(end),
        }
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: u64) -> bool {
        self.start <= t && self.end.is_none_or(|e| t < e)
    }

    /// Whether it has ended by `t`.
    pub fn ended_by(&self, t: u64) -> bool {
        self.end.is_some_and(|e| e <= t)
    }

    /// Whether the two share an instant.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.end.is_none_or(|e| other.start < e) && other.end.is_none_or(|e| self.start < e)
    }
}

/// When a claim should hold, as a client asks: every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// When to start, Unix ms; `None`: now. A start already past counts as now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// When to end, Unix ms; `None` (and no duration): until released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    /// How long from the start; instead of an end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Dynamic start: the earliest start from `start_ms` (or now) on, within
    /// the planning window, at which the claim fits for its whole duration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earliest: bool,
}

impl Timing {
    /// Checks what can be checked without a clock: not both an end and a
    /// duration, a duration above zero, an end after the start.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.end_ms.is_some() && self.duration_ms.is_some() {
            return Err(FieldError::new(
                "duration",
                "give an end or a duration, not both",
            ));
        }
        if self.earliest && self.end_ms.is_some() {
            return Err(FieldError::new(
                "end",
                "a claim with the earliest start takes a duration, not an end",
            ));
        }
        if let Some(d) = self.duration_ms {
            if d == 0 {
                return Err(FieldError::new("duration", "must be above zero"));
            }
            if d > MAX_WINDOW_MS {
                return Err(FieldError::new(
                    "duration",
                    "is longer than a hundred years",
                ));
            }
        }
        if let (Some(start), Some(end)) = (self.start_ms, self.end_ms)
            && end <= start
        {
            return Err(FieldError::new("end", "must be after the start"));
        }
        Ok(())
    }

    /// The window this timing gives when decided at `now`: the start is
    /// never before `now`, and an end that is not after it is refused.
    pub fn resolve(&self, now: u64) -> Result<Window, FieldError> {
        self.validate()?;
        let start = self.start_ms.map_or(now, |s| s.max(now));
        let end = match (self.end_ms, self.duration_ms) {
            (Some(end), _) => Some(end),
            (None, Some(d)) => Some(start.saturating_add(d)),
            (None, None) => None,
        };
        if let Some(end) = end {
            if end <= start {
                return Err(FieldError::new(
                    "end",
                    format!(
                        "{} is not in the future (now is {})",
                        format_instant(end),
                        format_instant(now)
                    ),
                ));
            }
            if end - start > MAX_WINDOW_MS {
                return Err(FieldError::new("end", "is more than a hundred years away"));
            }
        }
        Ok(Window { start, end })
    }

    /// Whether nothing was asked for: from now until released.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// An instant for people: RFC 3339 in UTC, to the second.
pub fn format_instant(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_that_touch_do_not_overlap() {
        let a = Window::between(10, 20);
        assert!(!a.overlaps(&Window::between(20, 30)));
        assert!(!Window::between(20, 30).overlaps(&a));
        assert!(a.overlaps(&Window::between(19, 30)));
        assert!(a.overlaps(&Window::from(0)));
        assert!(Window::from(15).overlaps(&a));
        assert!(!Window::from(20).overlaps(&a));
        assert!(a.contains(10) && a.contains(19) && !a.contains(20) && !a.contains(9));
        assert!(Window::from(5).contains(u64::MAX));
        assert!(a.ended_by(20) && !a.ended_by(19) && !Window::from(0).ended_by(u64::MAX));
    }

    #[test]
    fn timing_resolves_against_now() {
        let now = 1_000;
        assert_eq!(Timing::default().resolve(now).unwrap(), Window::from(now));
        let t = Timing {
            start_ms: Some(5_000),
            duration_ms: Some(100),
            ..Timing::default()
        };
        assert_eq!(t.resolve(now).unwrap(), Window::between(5_000, 5_100));
        // A start already past is now; the duration counts from now.
        let t = Timing {
            start_ms: Some(10),
            duration_ms: Some(100),
            ..Timing::default()
        };
        assert_eq!(t.resolve(now).unwrap(), Window::between(now, now + 100));
        let t = Timing {
            end_ms: Some(now),
            ..Timing::default()
        };
        assert_eq!(t.resolve(now).unwrap_err().field, "end");
        let t = Timing {
            end_ms: Some(now + 1),
            ..Timing::default()
        };
        assert_eq!(t.resolve(now).unwrap(), Window::between(now, now + 1));
    }

    #[test]
    fn timing_validation_names_the_field() {
        let both = Timing {
            end_ms: Some(5),
            duration_ms: Some(5),
            ..Timing::default()
        };
        assert_eq!(both.validate().unwrap_err().field, "duration");
        let moving_end = Timing {
            end_ms: Some(5),
            earliest: true,
            ..Timing::default()
        };
        assert_eq!(moving_end.validate().unwrap_err().field, "end");
        assert!(
            Timing {
                duration_ms: Some(5),
                earliest: true,
                ..Timing::default()
            }
            .validate()
            .is_ok()
        );
        let zero = Timing {
            duration_ms: Some(0),
            ..Timing::default()
        };
        assert_eq!(zero.validate().unwrap_err().field, "duration");
        let huge = Timing {
            duration_ms: Some(MAX_WINDOW_MS + 1),
            ..Timing::default()
        };
        assert_eq!(huge.validate().unwrap_err().field, "duration");
        assert!(
            Timing {
                duration_ms: Some(MAX_WINDOW_MS),
                ..Timing::default()
            }
            .validate()
            .is_ok()
        );
        let backwards = Timing {
            start_ms: Some(10),
            end_ms: Some(10),
            ..Timing::default()
        };
        assert_eq!(backwards.validate().unwrap_err().field, "end");
        let far = Timing {
            start_ms: Some(10),
            end_ms: Some(10 + MAX_WINDOW_MS + 1),
            ..Timing::default()
        };
        assert_eq!(far.resolve(0).unwrap_err().field, "end");
        assert!(Timing::default().is_default());
        assert!(
            !Timing {
                start_ms: Some(1),
                ..Timing::default()
            }
            .is_default()
        );
    }

    #[test]
    fn a_window_may_last_a_hundred_years_and_no_more() {
        let year = 365 * 24 * 3600 * 1000;
        let lasting = |years: u64| Timing {
            duration_ms: Some(years * year),
            ..Timing::default()
        };
        assert!(lasting(99).validate().is_ok());
        assert!(lasting(100).validate().is_ok(), "leap days included");
        assert_eq!(lasting(101).validate().unwrap_err().field, "duration");
    }

    #[test]
    fn an_end_a_hundred_years_after_the_start_is_the_last_allowed() {
        let now = 2_000_000_000_000;
        let until = |end: u64| Timing {
            end_ms: Some(end),
            ..Timing::default()
        };
        assert_eq!(
            until(now + MAX_WINDOW_MS).resolve(now).unwrap(),
            Window::between(now, now + MAX_WINDOW_MS)
        );
        assert_eq!(
            until(now + MAX_WINDOW_MS + 1)
                .resolve(now)
                .unwrap_err()
                .field,
            "end"
        );
        assert!(until(now + 1_000).resolve(now).is_ok());
    }

    #[test]
    fn instants_read_as_utc() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_instant(1_796_083_200_000), "2026-12-01T00:00:00Z");
    }
}
