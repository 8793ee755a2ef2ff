//! Dynamic start (HORAO's name): the earliest start, within a planning
//! window, at which a whole claim fits for its whole duration, quota
//! included.
//!
//! What is free over a window only grows when something stops being held,
//! and fitting is monotone in what is free (every unit of a claim is the
//! same, and each datacenter's room is its own). So if a claim fits at a
//! start that is neither the first allowed nor an instant where something
//! is released, it also fits one millisecond earlier: the earliest start
//! is always one of those instants, and only they are tried, in order.

use super::{Candidate, Outcome, QuotaExceeded, Timeline, check_quota, decide, schedule_seeded};
use crate::model::{ClaimSpec, Tenant, Window, format_instant};

/// Where and when the earliest fitting start puts a claim.
#[derive(Debug, Clone)]
pub struct Found {
    /// The window found.
    pub window: Window,
    /// The placement there (without per-datacenter verdicts: ask
    /// [`super::schedule_seeded`] at `window` for them).
    pub outcome: Outcome,
}

/// Why no start within the planning window fits.
#[derive(Debug, Clone)]
pub struct NoSlot {
    /// How many starts were tried.
    pub tried: usize,
    /// The last start tried: after every release within the planning
    /// window, where the most is free.
    pub last: Window,
    /// The outcome there, for its per-datacenter reasons.
    pub outcome: Outcome,
    /// The quota refusal there, if it was the quota.
    pub quota: Option<Box<QuotaExceeded>>,
    /// One line for people.
    pub summary: String,
}

/// The earliest start from `first.start` on, before `first.start +
/// planning_ms`, at which `spec` fits on `candidates` for as long as
/// `first` lasts, with `tenant` (holding `usage`) within its quota at
/// every instant. Decided at `now`; round-robin continues after `rotation`,
/// ties are broken as `tie_seed` says ([`super::schedule_seeded`]).
#[allow(clippy::too_many_arguments)]
pub fn earliest_start(
    candidates: &[Candidate<'_>],
    spec: &ClaimSpec,
    tenant: &Tenant,
    usage: &Timeline,
    first: Window,
    planning_ms: u64,
    rotation: Option<&str>,
    now: u64,
    tie_seed: Option<u64>,
) -> Result<Found, Box<NoSlot>> {
    let last = first.start.saturating_add(planning_ms);
    // Capacity frees up where a claim or a maintenance ends.
    let mut starts: Vec<u64> = candidates
        .iter()
        .flat_map(|c| {
            let closed_ends = c
                .usage
                .closed
                .iter()
                .filter_map(|(w, _)| w.end)
                .filter(|e| *e > first.start);
            c.usage
                .allocated
                .releases_after(first.start)
                .chain(c.usage.maintenance.releases_after(first.start))
                .chain(closed_ends)
        })
        .chain(usage.releases_after(first.start))
        .filter(|t| *t < last)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let length = first.end.map(|e| e - first.start);
    let at = |start: u64| Window {
        start,
        end: length.map(|l| start.saturating_add(l)),
    };
    let mut tried = 0;
    let mut at_last = None;
    for start in std::iter::once(first.start).chain(starts) {
        tried += 1;
        let window = at(start);
        let quota = check_quota(tenant, usage, &spec.total(), window, now);
        // Without verdicts: only the last start tried is explained.
        let outcome = decide(candidates, spec, rotation, window, now, tie_seed, false);
        if quota.is_ok() && outcome.fits {
            return Ok(Found { window, outcome });
        }
        at_last = Some((window, quota.err()));
    }
    let (last_window, quota) = at_last.expect("the first start is always tried");
    let outcome = schedule_seeded(candidates, spec, rotation, last_window, now, tie_seed);
    let why = match &quota {
        Some(q) => q.to_string(),
        None => outcome.summary.clone(),
    };
    // Whole days as days (humantime would call 31 days a month and more).
    const DAY: u64 = 86_400_000;
    let planning = if planning_ms > 0 && planning_ms.is_multiple_of(DAY) {
        super::plural(planning_ms / DAY, "day")
    } else {
        humantime::format_duration(std::time::Duration::from_millis(planning_ms)).to_string()
    };
    let summary = format!(
        "no start from {} to {} ({planning}, the planning window) fits the whole claim for its whole duration; {} tried (the first and every instant capacity frees up); at the last, {}: {why}",
        format_instant(first.start),
        format_instant(last),
        super::plural(tried as u64, "start"),
        format_instant(last_window.start),
    );
    Err(Box::new(NoSlot {
        tried,
        last: last_window,
        outcome,
        quota,
        summary,
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Strategy as Gen, prop, prop_assert, prop_assert_eq, proptest};

    use super::*;
    use crate::model::Datacenter;
    use crate::scheduler::testkit::{amount, datacenter, spec};
    use crate::scheduler::{DatacenterUsage, Liveness};

    fn tenant(quota: u64) -> Tenant {
        crate::scheduler::testkit::tenant("t", quota)
    }

    fn dc(i: usize, total: u64) -> Datacenter {
        datacenter(&format!("dc{i}"), total)
    }

    /// Held windows: (datacenter, start, end, vCPU).
    type Held = (usize, u64, u64, u64);

    fn arb_held() -> impl Gen<Value = Held> {
        (0usize..2, 0u64..30, 1u64..15, 1u64..8).prop_map(|(d, s, l, v)| (d, s, s + l, v))
    }

    proptest! {
        /// The start found is the earliest that fits, by brute force over
        /// every millisecond of a small horizon; none is found exactly when
        /// none fits there.
        #[test]
        fn the_start_found_is_the_earliest_that_fits(
            held in prop::collection::vec(arb_held(), 0..8),
            count in 1u32..4,
            unit in 1u64..6,
            from in 0u64..20,
            length in prop::option::of(1u64..10),
            quota in 4u64..30,
            tenant_holds in prop::collection::vec((0u64..30, 1u64..10, 1u64..6), 0..3),
            planning in 1u64..40,
            maintenance in prop::collection::vec((0usize..2, 0u64..30, 1u64..15, prop::option::of(1u64..8)), 0..3),
        ) {
            let dcs = [dc(0, 8), dc(1, 6)];
            let mut usages = [DatacenterUsage::default(), DatacenterUsage::default()];
            for (d, s, e, v) in &held {
                usages[*d].allocated.add(Window::between(*s, *e), false, &amount(*v));
            }
            // Maintenance frees capacity where it ends, as claims do.
            for (i, (d, s, l, v)) in maintenance.iter().enumerate() {
                let w = Window::between(*s, s + l);
                match v {
                    Some(v) => usages[*d].maintenance.add(w, false, &amount(*v)),
                    None => usages[*d].closed.push((w, format!("m{i}"))),
                }
            }
            let mut theirs = Timeline::new();
            for (s, l, v) in &tenant_holds {
                theirs.add(Window::between(*s, s + l), false, &amount(*v));
            }
            let cands: Vec<Candidate<'_>> = dcs
                .iter()
                .zip(&usages)
                .map(|(dc, usage)| Candidate { dc, liveness: Liveness::Alive, usage })
                .collect();
            let s = spec(count, unit);
            let t = tenant(quota);
            let first = Window { start: from, end: length.map(|l| from + l) };
            let found = earliest_start(&cands, &s, &t, &theirs, first, planning, None, 0, None);
            let fits_at = |start: u64| {
                let w = Window { start, end: length.map(|l| start + l) };
                check_quota(&t, &theirs, &s.total(), w, 0).is_ok()
                    && crate::scheduler::schedule_after(&cands, &s, None, w, 0).fits
            };
            let want = (from..from + planning).find(|st| fits_at(*st));
            prop_assert_eq!(found.as_ref().ok().map(|slot| slot.window.start), want);
            if let Ok(slot) = &found {
                prop_assert_eq!(slot.window.end, length.map(|l| slot.window.start + l));
                prop_assert!(slot.outcome.fits);
            }
        }
    }

    #[test]
    fn nowhere_in_the_planning_window_says_why_at_the_last_start_tried() {
        let dcs = [dc(0, 4)];
        let mut usage = DatacenterUsage::default();
        usage
            .allocated
            .add(Window::between(0, 100), true, &amount(4));
        let cands = [Candidate {
            dc: &dcs[0],
            liveness: Liveness::Alive,
            usage: &usage,
        }];
        let s = spec(1, 2);
        let no = earliest_start(
            &cands,
            &s,
            &tenant(100),
            &Timeline::new(),
            Window::between(10, 20),
            86_400_000,
            None,
            10,
            None,
        );
        // It fits at 100, well within a day.
        assert_eq!(no.unwrap().window, Window::between(100, 110));
        let no = earliest_start(
            &cands,
            &s,
            &tenant(100),
            &Timeline::new(),
            Window::between(10, 20),
            90,
            None,
            10,
            None,
        )
        .unwrap_err();
        assert_eq!(no.tried, 1, "100 is past the planning window");
        let none = earliest_start(
            &cands,
            &s,
            &tenant(100),
            &Timeline::new(),
            Window::between(10, 20),
            0,
            None,
            10,
            None,
        )
        .unwrap_err();
        assert!(
            none.summary.contains("(0s, the planning window)"),
            "{}",
            none.summary
        );
        assert!(
            no.summary.starts_with(
                "no start from 1970-01-01T00:00:00Z to 1970-01-01T00:00:00Z (90ms, the planning window) fits the whole claim for its whole duration; 1 start tried"
            ),
            "{}",
            no.summary
        );
        assert!(
            no.summary.contains("0 of 1 unit found a place"),
            "{}",
            no.summary
        );
        assert!(no.quota.is_none());
        // The quota is named when it is what stands in the way.
        let no = earliest_start(
            &cands,
            &s,
            &tenant(1),
            &Timeline::new(),
            Window::between(10, 20),
            86_400_000,
            None,
            10,
            None,
        )
        .unwrap_err();
        assert!(no.summary.contains("quota"), "{}", no.summary);
        assert!(no.quota.is_some());
        assert!(
            no.summary.contains("(1 day, the planning window)"),
            "{}",
            no.summary
        );
        assert_eq!(no.tried, 2, "the first start and the release at 100");
        assert_eq!(no.last, Window::between(100, 110));
        assert!(
            no.summary
                .contains("2 starts tried (the first and every instant capacity frees up); at the last, 1970-01-01T00:00:00Z: tenant"),
            "{}",
            no.summary
        );
    }
}
