//! Tenant quotas.

use crate::model::{ResourceClass, Resources, Tenant};

/// A claim that would take a tenant over its quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant:?} would exceed its {class} quota: it holds {held}, the claim asks for {asked}, the quota is {quota}"
)]
pub struct QuotaExceeded {
    /// Whose quota.
    pub tenant: String,
    /// Which class.
    pub class: ResourceClass,
    /// Already held, in human units.
    pub held: String,
    /// Asked for, in human units.
    pub asked: String,
    /// The quota, in human units.
    pub quota: String,
}

/// Checks that `usage + request` stays within every quota of `tenant`.
pub fn check_quota(
    tenant: &Tenant,
    usage: &Resources,
    request: &Resources,
) -> Result<(), QuotaExceeded> {
    for (class, asked) in request.iter() {
        let Some(limit) = tenant.quota.limit(class) else {
            continue;
        };
        let held = usage.get(class);
        if held.saturating_add(asked) > limit {
            return Err(QuotaExceeded {
                tenant: tenant.name.clone(),
                class: class.clone(),
                held: class.format(held),
                asked: class.format(asked),
                quota: class.format(limit),
            });
        }
    }
    Ok(())
}
