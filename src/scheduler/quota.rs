//! Tenant quotas: at no instant may what a tenant holds exceed them.

use super::Timeline;
use crate::model::{ResourceClass, Resources, Tenant, Window, format_instant};

/// A claim that would take a tenant over its quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct QuotaExceeded {
    /// Whose quota.
    pub tenant: String,
    /// Which class.
    pub class: ResourceClass,
    /// Held at the peak within the claim's window, in human units.
    pub held: String,
    /// Asked for, in human units.
    pub asked: String,
    /// The quota, in human units.
    pub quota: String,
    /// When the peak is, Unix ms; `None` when it is now, at the claim's start.
    pub at_ms: Option<u64>,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (when, then) = match self.at_ms {
            Some(at) => (format!(" at {}", format_instant(at)), " then"),
            None => (String::new(), ""),
        };
        write!(
            f,
            "tenant {:?} would exceed its {} quota{when}: it holds {}{then}, the claim asks for {}, the quota is {}",
            self.tenant, self.class, self.held, self.asked, self.quota
        )
    }
}

/// Checks that what `tenant` holds (`usage`, over time) plus `request`
/// stays within every quota at every instant of `window`, decided at `now`.
pub fn check_quota(
    tenant: &Tenant,
    usage: &Timeline,
    request: &Resources,
    window: Window,
    now: u64,
) -> Result<(), Box<QuotaExceeded>> {
    for (class, asked) in request.iter() {
        let Some(limit) = tenant.quota.limit(class) else {
            continue;
        };
        let peak = usage.peak(class, window);
        if peak.amount.saturating_add(asked) > limit {
            let later = window.start > now || peak.at > window.start;
            return Err(Box::new(QuotaExceeded {
                tenant: tenant.name.clone(),
                class: class.clone(),
                held: class.format(peak.amount),
                asked: class.format(asked),
                quota: class.format(limit),
                at_ms: later.then_some(peak.at),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testkit::amount;

    fn tenant(quota: u64) -> Tenant {
        crate::scheduler::testkit::tenant("acme", quota)
    }

    #[test]
    fn the_peak_within_the_window_counts_and_the_error_says_when() {
        let mut held = Timeline::new();
        held.add(Window::from(0), true, &amount(2));
        held.add(Window::between(100, 200), false, &amount(6));
        let t = tenant(10);
        // Now, until released: 2 + 6 + 2 = 10 at 100 fits; 3 more do not.
        assert!(check_quota(&t, &held, &amount(2), Window::from(50), 50).is_ok());
        let e = check_quota(&t, &held, &amount(3), Window::from(50), 50).unwrap_err();
        assert_eq!(e.at_ms, Some(100));
        assert_eq!(
            e.to_string(),
            "tenant \"acme\" would exceed its compute.vcpu quota at 1970-01-01T00:00:00Z: it holds 8 then, the claim asks for 3, the quota is 10"
        );
        // Before the peak, or after it, the same claim fits.
        assert!(check_quota(&t, &held, &amount(3), Window::between(50, 100), 50).is_ok());
        assert!(check_quota(&t, &held, &amount(8), Window::from(200), 50).is_ok());
        // Exactly at the quota fits; one more does not.
        assert!(check_quota(&t, &held, &amount(8), Window::between(0, 100), 0).is_ok());
        assert!(check_quota(&t, &held, &amount(9), Window::between(0, 100), 0).is_err());
        // Over now, at the claim's start: no instant is named.
        let e = check_quota(&t, &held, &amount(9), Window::between(0, 100), 0).unwrap_err();
        assert_eq!(e.at_ms, None);
        assert_eq!(
            e.to_string(),
            "tenant \"acme\" would exceed its compute.vcpu quota: it holds 2, the claim asks for 9, the quota is 10"
        );
        // A claim that starts later names its start even when the peak is there.
        let e = check_quota(&t, &held, &amount(9), Window::between(100, 150), 0).unwrap_err();
        assert_eq!(e.at_ms, Some(100));
        // A class without a quota is not limited.
        let mut gpu = Resources::new();
        gpu.set(ResourceClass::parse("compute.gpu").unwrap(), 1_000);
        assert!(check_quota(&t, &held, &gpu, Window::from(0), 0).is_ok());
    }
}
