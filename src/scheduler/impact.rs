//! What a maintenance would take from the claims of its datacenter: the
//! classes it would push over capacity, and the claims whose capacity it
//! would take (the newest first, as few as restore the fit).

use super::{Candidate, Liveness, Outcome, Timeline, place_seeded};
use crate::model::{Claim, Maintenance, ResourceClass, Window};

/// One class a maintenance would push over capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// Which class.
    pub class: ResourceClass,
    /// theia's placements and maintenance together at their peak.
    pub needed: u64,
    /// What the datacenter can give theia (capacity less external usage);
    /// 0 while the whole datacenter is in maintenance.
    pub capacity: u64,
    /// When the peak is, Unix ms.
    pub at: u64,
}

/// A maintenance's impact on its datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impact {
    /// Where it would go over capacity; empty when everything still fits.
    pub over: Vec<Shortfall>,
    /// Claim ids whose capacity it would take, newest first: moving these
    /// out of the datacenter restores the fit.
    pub displaced: Vec<String>,
}

/// The impact of `m` on `here` (its datacenter), whose live claims are
/// `claims`, from `now` on.
pub fn impact(here: &Candidate<'_>, claims: &[&Claim], m: &Maintenance, now: u64) -> Impact {
    let Some(mut window) = m.effective_window() else {
        return Impact::default();
    };
    window.start = window.start.max(now);
    if window.end.is_some_and(|e| e <= window.start) {
        return Impact::default();
    }
    let mut overlapping: Vec<&Claim> = claims
        .iter()
        .copied()
        .filter(|c| c.state.holds_capacity() && c.placed_in(&here.dc.id).is_some())
        .filter(|c| !c.window.ended_by(now) && c.window.overlaps(&window))
        .collect();
    // Newest first: the claims made last are the ones moved.
    overlapping.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
    let mut maintenance = here.usage.maintenance.clone();
    if let Some(r) = &m.resources {
        maintenance.add(window, false, r);
    }
    let mut held = here.usage.allocated.clone();
    let shortfalls = |held: &Timeline| -> Vec<Shortfall> {
        // The classes it takes: only there can it push anybody out (a
        // class over-committed already is not this maintenance's doing).
        let classes: Vec<&ResourceClass> = match &m.resources {
            Some(r) => r.iter().filter(|(_, n)| *n > 0).map(|(c, _)| c).collect(),
            None => held.classes().collect(),
        };
        classes
            .into_iter()
            .filter_map(|class| {
                let (peak, capacity) = if m.takes_all() {
                    (held.peak(class, window), 0)
                } else {
                    let capacity = here.dc.inventory.get(class).map_or(0, |inv| {
                        inv.capacity()
                            .saturating_sub(inv.external(here.usage.applied.get(class)))
                    });
                    (held.peak_with(&maintenance, class, window), capacity)
                };
                (peak.amount > capacity).then(|| Shortfall {
                    class: class.clone(),
                    needed: peak.amount,
                    capacity,
                    at: peak.at,
                })
            })
            .collect()
    };
    // Only a class that claims hold in the window is theirs to lose: a
    // maintenance that takes more than there is, where no claim holds
    // anything, takes what there is and displaces nobody.
    let theirs = |held: &Timeline| -> Vec<Shortfall> {
        shortfalls(held)
            .into_iter()
            .filter(|s| held.peak(&s.class, window).amount > 0)
            .collect()
    };
    let over = theirs(&held);
    let mut displaced = Vec::new();
    let mut left = overlapping;
    loop {
        let short = theirs(&held);
        let holds_short = |c: &&Claim| {
            c.placed_in(&here.dc.id)
                .is_some_and(|p| short.iter().any(|s| p.resources.get(&s.class) > 0))
        };
        let Some(i) = left.iter().position(holds_short) else {
            break;
        };
        let claim = left.remove(i);
        let p = claim.placed_in(&here.dc.id).expect("filtered on it");
        held.remove(claim.window, claim.starts_when_made(), &p.resources);
        displaced.push(claim.id.clone());
    }
    Impact { over, displaced }
}

/// Where `claim`'s units in `dc` can go instead, over the rest of its
/// window from `now`: datacenters it is not in yet (the new parts are
/// confirmed afresh by their agents), not down, where they fit with every
/// constraint of the claim. `None` when they fit nowhere.
pub fn replacement(
    candidates: &[Candidate<'_>],
    claim: &Claim,
    dc: &str,
    now: u64,
) -> Option<Outcome> {
    let moving = claim.placed_in(dc)?;
    let mut spec = claim.spec.clone();
    spec.count = moving.units;
    let window = Window {
        start: claim.window.start.max(now),
        ..claim.window
    };
    let others: Vec<Candidate<'_>> = candidates
        .iter()
        .filter(|c| claim.placed_in(&c.dc.id).is_none() && c.liveness != Liveness::Down)
        .cloned()
        .collect();
    Some(place_seeded(&others, &spec, None, window, now, None)).filter(|o| o.fits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClaimState, Placement, Resources, Window};
    use crate::scheduler::testkit::{amount, datacenter, spec, vcpu};
    use crate::scheduler::{DatacenterUsage, Liveness, usage_by_datacenter};

    fn claim(id: &str, created: u64, vcpu: u64, window: Window) -> Claim {
        Claim {
            id: id.into(),
            spec: spec(1, vcpu),
            state: ClaimState::Placed,
            placements: vec![Placement {
                datacenter: "dc".into(),
                units: 1,
                resources: amount(vcpu),
                applied: false,
                apply_error: String::new(),
            }],
            created_ms: created,
            updated_ms: created,
            window,
        }
    }

    fn maintenance(resources: Option<u64>, window: Window) -> Maintenance {
        Maintenance {
            id: "m-1".into(),
            datacenter: "dc".into(),
            resources: resources.map(amount),
            window,
            reason: "racks".into(),
            created_by: "admin".into(),
            created_ms: 0,
            cancelled_ms: None,
        }
    }

    fn judge(claims: &[Claim], m: &Maintenance, now: u64) -> Impact {
        let dc = datacenter("dc", 16);
        let usage: DatacenterUsage = usage_by_datacenter(claims).remove("dc").unwrap_or_default();
        let here = Candidate {
            dc: &dc,
            liveness: Liveness::Alive,
            usage: &usage,
        };
        let refs: Vec<&Claim> = claims.iter().collect();
        impact(&here, &refs, m, now)
    }

    #[test]
    fn only_live_claims_that_hold_the_class_short_are_displaced() {
        let mut released = claim("released", 9, 8, Window::from(1));
        released.state = ClaimState::Released;
        let mut gpu_only = claim("gpu", 8, 1, Window::from(1));
        let gpu = ResourceClass::parse("compute.gpu").unwrap();
        let mut two_gpus = Resources::new();
        two_gpus.set(gpu, 2);
        gpu_only.spec.unit = two_gpus.clone();
        gpu_only.placements[0].resources = two_gpus;
        let claims = [claim("vcpu", 1, 12, Window::from(1)), gpu_only, released];
        let got = judge(
            &claims,
            &maintenance(Some(8), Window::between(100, 200)),
            10,
        );
        assert_eq!(got.displaced, ["vcpu"]);
    }

    #[test]
    fn a_displaced_part_moves_to_a_live_datacenter_the_claim_is_not_in_yet() {
        let dcs = [
            datacenter("dc", 16),
            datacenter("dc-b", 16),
            datacenter("dc-c", 16),
            datacenter("dc-d", 4),
        ];
        let empty = DatacenterUsage::default();
        let mut cands: Vec<Candidate<'_>> = dcs
            .iter()
            .map(|dc| Candidate {
                dc,
                liveness: Liveness::Alive,
                usage: &empty,
            })
            .collect();
        let mut c = claim("c", 1, 8, Window::between(5, 500));
        // Already in dc-b too: its part there stays, and dc-b is not a target.
        c.placements.push(Placement {
            datacenter: "dc-b".into(),
            ..c.placements[0].clone()
        });
        cands[2].liveness = Liveness::Down;
        // dc-c is down, dc-d too small: nowhere to go.
        assert!(replacement(&cands, &c, "dc", 100).is_none());
        cands[2].liveness = Liveness::Suspect;
        let out = replacement(&cands, &c, "dc", 100).expect("dc-c takes it");
        assert_eq!(out.placements.len(), 1);
        assert_eq!(
            (
                out.placements[0].datacenter.as_str(),
                out.placements[0].units
            ),
            ("dc-c", 1)
        );
        // Over the rest of its window only: what dc-c holds before now is no obstacle.
        let mut busy = DatacenterUsage::default();
        busy.allocated
            .add(Window::between(0, 100), false, &amount(16));
        cands[2].usage = &busy;
        assert!(replacement(&cands, &c, "dc", 100).is_some());
        assert!(replacement(&cands, &c, "dc", 99).is_none());
        // A claim with no part there has nothing to move.
        assert!(replacement(&cands, &c, "dc-z", 100).is_none());
    }

    #[test]
    fn what_still_fits_takes_nothing() {
        let claims = [claim("a", 1, 8, Window::from(1))];
        let m = maintenance(Some(8), Window::between(100, 200));
        assert_eq!(judge(&claims, &m, 10), Impact::default());
    }

    #[test]
    fn taking_more_than_there_is_displaces_only_claims_in_its_window() {
        let m = maintenance(Some(20), Window::between(100, 200));
        assert_eq!(judge(&[], &m, 10), Impact::default(), "nobody to displace");
        let claims = [
            claim("before", 1, 4, Window::between(1, 100)),
            claim("after", 2, 4, Window::from(200)),
            claim("during", 3, 2, Window::between(150, 160)),
        ];
        let got = judge(&claims, &m, 10);
        assert_eq!(got.displaced, ["during"]);
        assert_eq!(
            got.over,
            [Shortfall {
                class: vcpu(),
                needed: 22,
                capacity: 16,
                at: 150
            }]
        );
    }

    #[test]
    fn the_newest_claims_are_displaced_until_it_fits_and_only_in_its_window() {
        let claims = [
            claim("old", 1, 8, Window::from(1)),
            claim("mid", 2, 4, Window::from(2)),
            claim("new", 3, 4, Window::from(3)),
            // Ends before the maintenance starts: not in the way.
            claim("done", 4, 4, Window::between(4, 100)),
        ];
        let m = maintenance(Some(6), Window::between(100, 200));
        let got = judge(&claims, &m, 10);
        assert_eq!(
            got.over,
            [Shortfall {
                class: vcpu(),
                needed: 22,
                capacity: 16,
                at: 100
            }]
        );
        assert_eq!(got.displaced, ["new", "mid"], "22 − 4 = 18 > 16, − 4 = 14");
        // The whole datacenter displaces every claim within its window.
        let all = judge(&claims, &maintenance(None, Window::between(100, 200)), 10);
        assert_eq!(all.displaced, ["new", "mid", "old"]);
        assert_eq!(all.over[0].capacity, 0);
        assert_eq!(all.over[0].needed, 16);
        // Once its window is over, or cancelled before it starts, nothing.
        assert_eq!(judge(&claims, &m, 200), Impact::default());
        let mut cancelled = m.clone();
        cancelled.cancelled_ms = Some(50);
        assert_eq!(judge(&claims, &cancelled, 10), Impact::default());
    }
}
