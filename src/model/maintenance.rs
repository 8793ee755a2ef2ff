//! Maintenance: capacity an operator takes out of a datacenter over a
//! window, some resources or all of it.

use serde::{Deserialize, Serialize};

use super::{FieldError, Resources, Window, validate_name, validate_text};

/// A maintenance window on one datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// Unique id, like `m-0123456789ab`.
    pub id: String,
    /// Where.
    pub datacenter: String,
    /// What it takes out; `None`: the whole datacenter (nothing is placed
    /// there within its window).
    pub resources: Option<Resources>,
    /// When; no end: until cancelled (a drain).
    pub window: Window,
    /// Why, for people.
    pub reason: String,
    /// Who asked for it (a token's subject).
    pub created_by: String,
    /// When it was made, Unix ms.
    pub created_ms: u64,
    /// When it was cancelled, Unix ms; it takes nothing from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_ms: Option<u64>,
}

impl Maintenance {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("datacenter", &self.datacenter)?;
        if let Some(r) = &self.resources
            && r.is_zero()
        {
            return Err(FieldError::new(
                "resources",
                "name what it takes out, e.g. compute.vcpu=8, or take all of the datacenter",
            ));
        }
        if self.window.end.is_some_and(|e| e <= self.window.start) {
            return Err(FieldError::new("end", "must be after the start"));
        }
        if self.reason.trim().is_empty() {
            return Err(FieldError::new(
                "reason",
                "say why, for the tenants it affects",
            ));
        }
        validate_text("reason", &self.reason)
    }

    /// The window it takes capacity over: until it was cancelled, if it was.
    pub fn effective_window(&self) -> Option<Window> {
        let mut w = self.window;
        if let Some(c) = self.cancelled_ms {
            let end = w.end.map_or(c, |e| e.min(c));
            if end <= w.start {
                return None;
            }
            w.end = Some(end);
        }
        Some(w)
    }

    /// Whether it takes the whole datacenter.
    pub fn takes_all(&self) -> bool {
        self.resources.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maintenance() -> Maintenance {
        Maintenance {
            id: "m-1".into(),
            datacenter: "dc-a".into(),
            resources: Some(Resources::parse_list("resources", "compute.vcpu=8").unwrap()),
            window: Window::between(100, 200),
            reason: "new racks".into(),
            created_by: "admin".into(),
            created_ms: 50,
            cancelled_ms: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(maintenance().validate().is_ok());
        let mut m = maintenance();
        m.window.end = Some(100);
        assert_eq!(m.validate().unwrap_err().field, "end");
        m.window.end = None;
        assert!(m.validate().is_ok(), "until cancelled");
        let mut m = maintenance();
        m.reason = "  ".into();
        assert_eq!(m.validate().unwrap_err().field, "reason");
        let mut m = maintenance();
        m.reason = "a\u{7}".into();
        assert_eq!(m.validate().unwrap_err().field, "reason");
        let mut m = maintenance();
        m.resources = Some(Resources::new());
        assert_eq!(m.validate().unwrap_err().field, "resources");
        let mut m = maintenance();
        m.datacenter = "Bad DC".into();
        assert_eq!(m.validate().unwrap_err().field, "datacenter");
        let mut m = maintenance();
        m.resources = None;
        assert!(m.validate().is_ok() && m.takes_all());
        assert!(!maintenance().takes_all());
    }

    #[test]
    fn a_cancelled_maintenance_takes_nothing_from_its_cancellation() {
        let mut m = maintenance();
        assert_eq!(m.effective_window(), Some(Window::between(100, 200)));
        m.cancelled_ms = Some(150);
        assert_eq!(m.effective_window(), Some(Window::between(100, 150)));
        m.cancelled_ms = Some(100);
        assert_eq!(m.effective_window(), None);
        m.cancelled_ms = Some(20);
        assert_eq!(m.effective_window(), None);
        m.cancelled_ms = Some(500);
        assert_eq!(m.effective_window(), Some(Window::between(100, 200)));
    }
}
