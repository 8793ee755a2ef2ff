//! What theia's placements hold, per datacenter and per tenant.

use std::collections::BTreeMap;

use super::Timeline;
use crate::model::{Claim, Resources, Window};

/// theia's placements in one datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatacenterUsage {
    /// Held by live claims, over time.
    pub allocated: Timeline,
    /// The part of `allocated` that the agent confirmed it applied.
    pub applied: Resources,
    /// Live claims with a placement here.
    pub claims: u32,
    /// What maintenance takes out, over time.
    pub maintenance: Timeline,
    /// Windows of maintenance that take the whole datacenter, with their
    /// ids: nothing is placed here within them.
    pub closed: Vec<(Window, String)>,
}

/// No placements at all: the usage of a datacenter theia holds nothing in.
static NO_USAGE: DatacenterUsage = DatacenterUsage {
    allocated: Timeline::new(),
    applied: Resources::new(),
    claims: 0,
    maintenance: Timeline::new(),
    closed: Vec::new(),
};

impl DatacenterUsage {
    /// Whether nothing is placed or planned here.
    pub fn is_empty(&self) -> bool {
        self.claims == 0 && self.maintenance.is_empty() && self.closed.is_empty()
    }

    /// The whole-datacenter maintenance windows that overlap `window`.
    pub fn closed_within(&self, window: Window) -> impl Iterator<Item = &(Window, String)> {
        self.closed.iter().filter(move |(w, _)| w.overlaps(&window))
    }

    /// The usage of a datacenter where theia holds nothing, for as long as
    /// any borrow needs it.
    pub fn none() -> &'static Self {
        &NO_USAGE
    }
}

/// Sums the placements of live claims per datacenter, over their windows.
pub fn usage_by_datacenter<'a>(
    claims: impl IntoIterator<Item = &'a Claim>,
) -> BTreeMap<String, DatacenterUsage> {
    let mut out: BTreeMap<String, DatacenterUsage> = BTreeMap::new();
    for claim in claims.into_iter().filter(|c| c.state.holds_capacity()) {
        for p in &claim.placements {
            let u = out.entry(p.datacenter.clone()).or_default();
            u.allocated
                .add(claim.window, claim.starts_when_made(), &p.resources);
            if p.applied {
                u.applied.add(&p.resources);
            }
            u.claims += 1;
        }
    }
    out
}

/// What a tenant's live claims hold together over time, and how many
/// there are.
pub fn tenant_usage<'a>(
    claims: impl IntoIterator<Item = &'a Claim>,
    tenant: &str,
) -> (Timeline, u32) {
    let mut total = Timeline::new();
    let mut count = 0;
    for claim in claims
        .into_iter()
        .filter(|c| c.state.holds_capacity() && c.spec.tenant == tenant)
    {
        total.add(claim.window, claim.starts_when_made(), &claim.spec.total());
        count += 1;
    }
    (total, count)
}
