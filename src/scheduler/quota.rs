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
