//! Indices over the claims, kept up to date on every merge so that no
//! decision scans every claim ever made: request ids per tenant, what each
//! tenant holds, theia's placements per datacenter, the live claims in each
//! datacenter, and every kept claim in creation order (all of them and per
//! tenant), so that lists and an agent's desired set cost what they return.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Claim, Maintenance};
use crate::scheduler::{DatacenterUsage, Timeline};

/// What one tenant's live claims hold together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// The sum of every live claim's resources, over their windows.
    pub held: Timeline,
    /// How many live claims there are.
    pub claims: u32,
}

/// Kept claims by `(created_ms, id)`: every one, and the live ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ByCreation {
    all: BTreeSet<(u64, String)>,
    live: BTreeSet<(u64, String)>,
}

impl ByCreation {
    fn add(&mut self, claim: &Claim) {
        let key = (claim.created_ms, claim.id.clone());
        if claim.state.holds_capacity() {
            self.live.insert(key.clone());
        }
        self.all.insert(key);
    }

    fn remove(&mut self, claim: &Claim) {
        let key = (claim.created_ms, claim.id.clone());
        self.live.remove(&key);
        self.all.remove(&key);
    }

    fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

/// The indices of [`Books`](super::Books); derived from the claims alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimIndex {
    /// Every kept claim in creation order.
    created: ByCreation,
    /// The same per tenant.
    tenant_created: BTreeMap<String, ByCreation>,
    /// The live claims with a placement in each datacenter.
    placed: BTreeMap<String, BTreeSet<String>>,
    /// `(tenant, request id)` → claim ids, for every kept claim, released
    /// ones included: a retry after a release finds the released claim.
    /// A set, because two managers racing (or books from before request ids
    /// were unique) can leave two claims under one request id.
    requests: BTreeMap<(String, String), BTreeSet<String>>,
    tenants: BTreeMap<String, TenantUsage>,
    datacenters: BTreeMap<String, DatacenterUsage>,
    /// Ended claims by when they ended, oldest first: what retention prunes.
    released: BTreeSet<(u64, String)>,
    /// Live claims that start after they were made, by start: when their
    /// agents must be told to assign them.
    starts: BTreeSet<(u64, String)>,
    /// Live claims with an end, by end: when they expire.
    ends: BTreeSet<(u64, String)>,
}

impl ClaimIndex {
    /// Accounts for one claim changing from `before` to `after` (either may
    /// be absent: a new claim, a pruned one).
    pub fn update(&mut self, before: Option<&Claim>, after: Option<&Claim>) {
        if before == after {
            return;
        }
        if let Some(c) = before {
            self.remove(c);
        }
        if let Some(c) = after {
            self.add(c);
        }
    }

    fn add(&mut self, claim: &Claim) {
        self.created.add(claim);
        self.tenant_created
            .entry(claim.spec.tenant.clone())
            .or_default()
            .add(claim);
        if !claim.spec.request_id.is_empty() {
            self.requests
                .entry(request_key(claim))
                .or_default()
                .insert(claim.id.clone());
        }
        if claim.state.ended() {
            self.released.insert((claim.updated_ms, claim.id.clone()));
        }
        if !claim.state.holds_capacity() {
            return;
        }
        let (window, early) = (claim.window, claim.starts_when_made());
        if !early {
            self.starts.insert((window.start, claim.id.clone()));
        }
        if let Some(end) = window.end {
            self.ends.insert((end, claim.id.clone()));
        }
        let t = self.tenants.entry(claim.spec.tenant.clone()).or_default();
        t.held.add(window, early, &claim.spec.total());
        t.claims += 1;
        for p in &claim.placements {
            self.placed
                .entry(p.datacenter.clone())
                .or_default()
                .insert(claim.id.clone());
            let u = self.datacenters.entry(p.datacenter.clone()).or_default();
            u.allocated.add(window, early, &p.resources);
            if p.applied {
                u.applied.add(&p.resources);
            }
            u.claims += 1;
        }
    }

    fn remove(&mut self, claim: &Claim) {
        self.created.remove(claim);
        if let Some(t) = self.tenant_created.get_mut(&claim.spec.tenant) {
            t.remove(claim);
            if t.is_empty() {
                self.tenant_created.remove(&claim.spec.tenant);
            }
        }
        if !claim.spec.request_id.is_empty() {
            let key = request_key(claim);
            if let Some(ids) = self.requests.get_mut(&key) {
                ids.remove(&claim.id);
                if ids.is_empty() {
                    self.requests.remove(&key);
                }
            }
        }
        self.released.remove(&(claim.updated_ms, claim.id.clone()));
        if !claim.state.holds_capacity() {
            return;
        }
        let (window, early) = (claim.window, claim.starts_when_made());
        self.starts.remove(&(window.start, claim.id.clone()));
        if let Some(end) = window.end {
            self.ends.remove(&(end, claim.id.clone()));
        }
        if let Some(t) = self.tenants.get_mut(&claim.spec.tenant) {
            t.held.remove(window, early, &claim.spec.total());
            t.claims = t.claims.saturating_sub(1);
            if t.claims == 0 {
                self.tenants.remove(&claim.spec.tenant);
            }
        }
        for p in &claim.placements {
            if let Some(ids) = self.placed.get_mut(&p.datacenter) {
                ids.remove(&claim.id);
                if ids.is_empty() {
                    self.placed.remove(&p.datacenter);
                }
            }
            let Some(u) = self.datacenters.get_mut(&p.datacenter) else {
                continue;
            };
            u.allocated.remove(window, early, &p.resources);
            if p.applied {
                u.applied.subtract(&p.resources);
            }
            u.claims = u.claims.saturating_sub(1);
            if u.is_empty() {
                self.datacenters.remove(&p.datacenter);
            }
        }
    }

    /// Accounts for one maintenance changing from `before` to `after`.
    pub fn update_maintenance(
        &mut self,
        before: Option<&Maintenance>,
        after: Option<&Maintenance>,
    ) {
        if before == after {
            return;
        }
        if let Some(m) = before {
            self.take_maintenance(m);
        }
        if let Some(m) = after {
            let Some(window) = m.effective_window() else {
                return;
            };
            let u = self.datacenters.entry(m.datacenter.clone()).or_default();
            match &m.resources {
                Some(r) => u.maintenance.add(window, false, r),
                None => {
                    u.closed.push((window, m.id.clone()));
                    u.closed.sort_by(|a, b| a.1.cmp(&b.1));
                }
            }
        }
    }

    fn take_maintenance(&mut self, m: &Maintenance) {
        let Some(window) = m.effective_window() else {
            return;
        };
        let Some(u) = self.datacenters.get_mut(&m.datacenter) else {
            return;
        };
        match &m.resources {
            Some(r) => u.maintenance.remove(window, false, r),
            None => u.closed.retain(|(_, id)| *id != m.id),
        }
        if u.is_empty() {
            self.datacenters.remove(&m.datacenter);
        }
    }

    /// The claims made for `tenant` under `request_id`, released or not.
    pub fn requests(&self, tenant: &str, request_id: &str) -> impl Iterator<Item = &str> {
        self.requests
            .get(&(tenant.to_owned(), request_id.to_owned()))
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The live claims with a placement in `dc`, by id.
    pub fn live_in(&self, dc: &str) -> impl Iterator<Item = &str> {
        self.placed
            .get(dc)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Kept claims in creation order, as `(created_ms, id)`, after `after`
    /// (none: from the first): `tenant`'s only when given, the live ones
    /// only unless `ended` (by the state they were written with).
    pub fn created_after<'a>(
        &'a self,
        tenant: Option<&str>,
        ended: bool,
        after: Option<(u64, &str)>,
    ) -> impl Iterator<Item = (u64, &'a str)> + 'a {
        let index = match tenant {
            Some(t) => self.tenant_created.get(t),
            None => Some(&self.created),
        };
        let from = match after {
            Some((ms, id)) => std::ops::Bound::Excluded((ms, id.to_owned())),
            None => std::ops::Bound::Unbounded,
        };
        index
            .map(|i| if ended { &i.all } else { &i.live })
            .into_iter()
            .flat_map(move |set| set.range((from.clone(), std::ops::Bound::Unbounded)))
            .map(|(ms, id)| (*ms, id.as_str()))
    }

    /// What `tenant`'s live claims hold.
    pub fn tenant(&self, tenant: &str) -> TenantUsage {
        self.tenants.get(tenant).cloned().unwrap_or_default()
    }

    /// Live claims whose window starts in `(after, until]` (Unix ms), by
    /// start; only those that start after they were made.
    pub fn starting(&self, after: u64, until: u64) -> impl Iterator<Item = &str> {
        let after = (after.saturating_add(1), String::new());
        self.starts
            .range(after..)
            .take_while(move |(t, _)| *t <= until)
            .map(|(_, id)| id.as_str())
    }

    /// Live claims whose window ends at or before `t`, by end.
    pub fn ending_by(&self, t: u64) -> impl Iterator<Item = &str> {
        self.ends
            .iter()
            .take_while(move |(end, _)| *end <= t)
            .map(|(_, id)| id.as_str())
    }

    /// The first start or end of a live claim after `t`: when agents next
    /// need telling.
    pub fn next_boundary_after(&self, t: u64) -> Option<u64> {
        let after = (t.saturating_add(1), String::new());
        let start = self.starts.range(after.clone()..).next().map(|(s, _)| *s);
        let end = self.ends.range(after..).next().map(|(e, _)| *e);
        start.into_iter().chain(end).min()
    }

    /// Claims ended before `cutoff_ms` (Unix ms), oldest first.
    pub fn released_before(&self, cutoff_ms: u64) -> impl Iterator<Item = &str> {
        self.released
            .iter()
            .take_while(move |(ms, _)| *ms < cutoff_ms)
            .map(|(_, id)| id.as_str())
    }

    /// theia's live placements in `dc`.
    pub fn datacenter(&self, dc: &str) -> &DatacenterUsage {
        self.datacenters.get(dc).unwrap_or(DatacenterUsage::none())
    }
}

fn request_key(claim: &Claim) -> (String, String) {
    (claim.spec.tenant.clone(), claim.spec.request_id.clone())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{Books, Change};
    use crate::clock::Timestamp;
    use crate::model::{
        ClaimSpec, ClaimState, Placement, ResourceClass, Resources, Selector, Strategy as Rank,
        Window,
    };
    use crate::scheduler::{tenant_usage, usage_by_datacenter};

    use super::*;

    fn vcpu() -> ResourceClass {
        ResourceClass::parse("compute.vcpu").unwrap()
    }

    /// A claim whose every field the index reads is drawn at random.
    fn claim(
        id: u8,
        tenant: u8,
        request: u8,
        state: u8,
        dcs: &[(u8, u8, bool)],
        window: u8,
    ) -> Claim {
        let mut unit = Resources::new();
        unit.set(vcpu(), 1 + u64::from(id % 3));
        let placements = dcs
            .iter()
            .map(|(dc, units, applied)| Placement {
                datacenter: format!("dc{dc}"),
                units: u32::from(*units),
                resources: unit.times(u64::from(*units)),
                applied: *applied,
                apply_error: String::new(),
            })
            .collect::<Vec<_>>();
        let count = placements.iter().map(|p| p.units).sum::<u32>().max(1);
        Claim {
            id: format!("c{id}"),
            spec: ClaimSpec {
                tenant: format!("t{tenant}"),
                request_id: if request == 0 {
                    String::new()
                } else {
                    format!("r{request}")
                },
                count,
                profile: None,
                unit,
                selector: Selector::default(),
                datacenters: vec![],
                distinct_datacenters: false,
                max_per_datacenter: 0,
                strategy: Rank::Binpack,
                timing: Default::default(),
            },
            state: [
                ClaimState::Placed,
                ClaimState::Active,
                ClaimState::Released,
                ClaimState::Expired,
            ][usize::from(state % 4)],
            placements,
            // Made at 0 to 3, in an order other than the ids': the first
            // two windows start when made, the others later.
            created_ms: u64::from(3 - id % 4),
            updated_ms: u64::from(request) * 10 + u64::from(state),
            window: [
                Window::always(),
                Window::between(0, 4),
                Window::from(5),
                Window::between(5, 9),
            ][usize::from(window % 4)],
        }
    }

    /// A write of one claim at one stamp, or its pruning (`None`).
    fn arb_write() -> impl Strategy<Value = (u64, Option<Claim>, u8)> {
        (
            0u64..8,
            0u8..4,
            0u8..2,
            0u8..3,
            0u8..4,
            prop::collection::vec((0u8..3, 1u8..3, any::<bool>()), 0..3),
            0u8..10,
            0u8..4,
        )
            .prop_map(|(ms, id, tenant, request, state, dcs, prune, window)| {
                let c = claim(id, tenant, request, state, &dcs, window);
                (ms, if prune == 0 { None } else { Some(c) }, id)
            })
    }

    /// The oracle: every answer of the index, recomputed by scanning.
    fn check(books: &Books) -> Result<(), TestCaseError> {
        let claims: Vec<&Claim> = books.claims().values().collect();
        let by_dc = usage_by_datacenter(claims.iter().copied());
        for dc in ["dc0", "dc1", "dc2"] {
            let want = by_dc.get(dc).cloned().unwrap_or_default();
            let got = books.index().datacenter(dc);
            for t in [0, 3, 4, 5, 8, 9, 100] {
                prop_assert_eq!(
                    got.allocated.level(&vcpu(), t),
                    want.allocated.level(&vcpu(), t),
                    "allocated in {} at {}",
                    dc,
                    t
                );
            }
            prop_assert_eq!(
                got.applied.get(&vcpu()),
                want.applied.get(&vcpu()),
                "applied in {}",
                dc
            );
            prop_assert_eq!(got.claims, want.claims, "claims in {}", dc);
            let mut want: Vec<&str> = claims
                .iter()
                .filter(|c| c.state.holds_capacity() && c.placed_in(dc).is_some())
                .map(|c| c.id.as_str())
                .collect();
            want.sort_unstable();
            let got: Vec<&str> = books.index().live_in(dc).collect();
            prop_assert_eq!(got, want, "live claims in {}", dc);
        }
        // Creation order, from every point, per tenant or not, live or all.
        for tenant in [None, Some("t0"), Some("t1"), Some("nobody")] {
            for ended in [false, true] {
                let mut want: Vec<(u64, &str)> = claims
                    .iter()
                    .filter(|c| tenant.is_none_or(|t| c.spec.tenant == t))
                    .filter(|c| ended || c.state.holds_capacity())
                    .map(|c| (c.created_ms, c.id.as_str()))
                    .collect();
                want.sort_unstable();
                let got: Vec<(u64, &str)> =
                    books.index().created_after(tenant, ended, None).collect();
                prop_assert_eq!(&got, &want, "created, {:?}, ended {}", tenant, ended);
                for (i, after) in want.iter().enumerate() {
                    let rest: Vec<(u64, &str)> = books
                        .index()
                        .created_after(tenant, ended, Some(*after))
                        .collect();
                    prop_assert_eq!(&rest[..], &want[i + 1..], "after {:?}", after);
                }
            }
        }
        let live = || claims.iter().filter(|c| c.state.holds_capacity());
        for (after, until) in [(0, 4), (0, 5), (5, 100), (4, 5)] {
            let mut want: Vec<&str> = live()
                .filter(|c| !c.starts_when_made())
                .filter(|c| after < c.window.start && c.window.start <= until)
                .map(|c| c.id.as_str())
                .collect();
            want.sort_unstable();
            let got: Vec<&str> = books.index().starting(after, until).collect();
            prop_assert_eq!(got, want, "starting in ({}, {}]", after, until);
        }
        for t in [3, 4, 9] {
            let mut want: Vec<&str> = live()
                .filter(|c| c.window.ended_by(t))
                .map(|c| c.id.as_str())
                .collect();
            want.sort_unstable();
            let mut got: Vec<&str> = books.index().ending_by(t).collect();
            got.sort_unstable();
            prop_assert_eq!(got, want, "ending by {}", t);
        }
        for t in [0, 4, 5, 9] {
            let want = live()
                .flat_map(|c| {
                    let start = (!c.starts_when_made()).then_some(c.window.start);
                    start.into_iter().chain(c.window.end)
                })
                .filter(|b| *b > t)
                .min();
            prop_assert_eq!(
                books.index().next_boundary_after(t),
                want,
                "next after {}",
                t
            );
        }
        for cutoff in [0, 5, 12, 100] {
            let mut want: Vec<(u64, &str)> = claims
                .iter()
                .filter(|c| c.state.ended() && c.updated_ms < cutoff)
                .map(|c| (c.updated_ms, c.id.as_str()))
                .collect();
            want.sort_unstable();
            let want: Vec<&str> = want.into_iter().map(|(_, id)| id).collect();
            let got: Vec<&str> = books.index().released_before(cutoff).collect();
            prop_assert_eq!(got, want, "released before {}", cutoff);
        }
        for t in ["t0", "t1"] {
            let (held, n) = tenant_usage(claims.iter().copied(), t);
            let got = books.index().tenant(t);
            for at in [0, 4, 5, 9] {
                prop_assert_eq!(
                    got.held.level(&vcpu(), at),
                    held.level(&vcpu(), at),
                    "held by {} at {}",
                    t,
                    at
                );
            }
            prop_assert_eq!(got.claims, n, "claims of {}", t);
            for r in ["r1", "r2"] {
                let mut want: Vec<&str> = claims
                    .iter()
                    .filter(|c| c.spec.tenant == t && c.spec.request_id == r)
                    .map(|c| c.id.as_str())
                    .collect();
                want.sort_unstable();
                let got: Vec<&str> = books.index().requests(t, r).collect();
                prop_assert_eq!(got, want, "request {} of {}", r, t);
            }
        }
        Ok(())
    }

    proptest! {
        /// After any merges, restores and prunings, in any order, the index
        /// says what a scan of every claim says.
        #[test]
        fn the_index_agrees_with_a_scan(writes in prop::collection::vec(arb_write(), 1..40)) {
            let mut books = Books::default();
            for (ms, write, id) in writes {
                let ts = Timestamp { ms, counter: 0, node: "m".into() };
                match write {
                    Some(c) => {
                        let change = Change::claim(ts, c);
                        let prior = books.current(&change);
                        books.apply(&change);
                        check(&books)?;
                        // Undo it half the time, as the writer does on a store error.
                        if ms % 2 == 0 {
                            books.restore(&change, prior);
                        }
                    }
                    None => {
                        let _ = ts;
                        books.prune_claim(&format!("c{id}"));
                    }
                }
                check(&books)?;
            }
        }
    }

    #[test]
    fn a_change_undone_leaves_the_books_as_they_were() {
        let mut books = Books::default();
        let ts = |ms| Timestamp {
            ms,
            counter: 0,
            node: "m".into(),
        };
        let first = Change::claim(ts(1), claim(1, 0, 1, 0, &[(0, 2, true)], 0));
        books.apply(&first);
        let before = books.clone();
        let second = Change::claim(ts(2), claim(1, 0, 1, 2, &[(0, 2, true)], 0));
        let prior = books.current(&second);
        books.apply(&second);
        assert_eq!(books.index().datacenter("dc0").claims, 0, "released");
        books.restore(&second, prior);
        assert_eq!(books, before);
        assert_eq!(books.index().datacenter("dc0").claims, 1);
    }
}
