//! The scheduler: a pure function from (datacenters, their usage over
//! time, a claim and its window) to a placement, or to an explanation of
//! why there is none.
//!
//! For each unit it filters datacenters (schedulable, not down, label
//! selector, explicit list, `max_per_datacenter`, distinct datacenters),
//! checks capacity in every class the unit needs at every instant of the
//! claim's window (against the peak of what is held then), then ranks what is left
//! (`binpack`: most allocated first, `spread`: least allocated first), ties
//! broken by datacenter id; `round-robin` takes the next datacenter in id
//! order after a rotation point the caller keeps. A claim is placed whole
//! or not at all.

mod earliest;
mod impact;
mod liveness;
mod over_steps;
mod quota;
mod timeline;
mod usage;

pub use earliest::{Found, NoSlot, earliest_start};
pub use impact::{Impact, Shortfall, impact, replacement};
pub use liveness::{Liveness, LivenessPolicy};
pub use over_steps::{StepCapacity, step_capacity};
pub use quota::{QuotaExceeded, check_quota};
pub use timeline::{Peak, Timeline};
pub use usage::{DatacenterUsage, tenant_usage, usage_by_datacenter};

use std::collections::BTreeMap;

use crate::model::{
    ClaimSpec, Datacenter, Inventory, Placement, ResourceClass, Strategy, Window, format_instant,
};

/// A datacenter as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The datacenter.
    pub dc: &'a Datacenter,
    /// Whether its agent is heard from.
    pub liveness: Liveness,
    /// theia's placements there over time (borrowed from the books' index:
    /// building candidates copies nothing).
    pub usage: &'a DatacenterUsage,
}

/// What theia may still place in one class of one datacenter:
/// `capacity − allocated − external`, where external usage is what the
/// management plane reports used beyond theia's assignments (see
/// [`Inventory::external`]; `applied` is theia's confirmed placements there).
pub fn available(inv: &Inventory, allocated: u64, applied: u64) -> u64 {
    inv.capacity()
        .saturating_sub(allocated)
        .saturating_sub(inv.external(applied))
}

impl Candidate<'_> {
    /// What theia may still place here in `class` at every instant of
    /// `window`, and the instant where the least is left.
    pub fn available_over(&self, class: &ResourceClass, window: Window) -> Peak {
        let peak = self
            .usage
            .allocated
            .peak_with(&self.usage.maintenance, class, window);
        let left = self.dc.inventory.get(class).map_or(0, |inv| {
            available(inv, peak.amount, self.usage.applied.get(class))
        });
        Peak {
            amount: left,
            at: peak.at,
        }
    }

    /// How much of `class` theia can hold here at all.
    fn capacity(&self, class: &ResourceClass) -> u64 {
        self.dc.inventory.get(class).map_or(0, Inventory::capacity)
    }

    /// The classes where theia's placements hold more than the datacenter
    /// can give at some instant from `now` on (its totals dropped, or an
    /// operator reserved more): shown, never hidden, and the claims there
    /// are at risk.
    pub fn over_committed(&self, now: u64) -> Vec<ResourceClass> {
        let from_now = Window::from(now);
        // Claims held while the whole datacenter is in maintenance.
        let closed: Vec<Window> = self
            .usage
            .closed_within(from_now)
            .map(|(w, _)| *w)
            .collect();
        self.usage
            .allocated
            .classes()
            .filter(|class| {
                let held = self
                    .usage
                    .allocated
                    .peak_with(&self.usage.maintenance, class, from_now)
                    .amount;
                held > self.capacity(class)
                    || closed.iter().any(|w| {
                        let start = w.start.max(now);
                        let open = Window { start, ..*w };
                        w.end.is_none_or(|e| start < e)
                            && self.usage.allocated.peak(class, open).amount > 0
                    })
            })
            .cloned()
            .collect()
    }
}

/// Why a datacenter can or cannot take a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The datacenter.
    pub datacenter: String,
    /// Units of the claim it could take on its own.
    pub units_that_fit: u32,
    /// Why it takes no unit; when the claim does not fit, also why a
    /// datacenter that took some could take no more. Empty otherwise.
    pub reasons: Vec<String>,
    /// The filters that keep it from taking any unit, by short name:
    /// `datacenters` (not in the claim's list), `selector`, `unschedulable`,
    /// `down`, `maintenance` (the whole datacenter, within the claim's
    /// window), `capacity:<class>`. Empty when it can take one.
    pub filters: Vec<String>,
}

/// The scheduler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether every unit found a place.
    pub fits: bool,
    /// Where the units go (empty unless `fits`).
    pub placements: Vec<Placement>,
    /// Per datacenter, before placing: how many units fit and why not.
    pub verdicts: Vec<Verdict>,
    /// One line for people.
    pub summary: String,
    /// The datacenter that took the last unit: where the next round-robin
    /// claim continues from (`None` unless `fits`).
    pub last_datacenter: Option<String>,
    /// How many datacenters each filter kept from taking any unit (one
    /// kept out by two filters counts for both).
    pub rejected_by: BTreeMap<String, u32>,
}

/// Reasons a datacenter is ruled out whatever its capacity.
/// `mismatch` is the reason given when the selector does not match,
/// formatted once per claim rather than once per datacenter.
fn static_reasons(
    c: &Candidate<'_>,
    spec: &ClaimSpec,
    mismatch: &str,
    window: Window,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if !spec.datacenters.is_empty() && !spec.datacenters.contains(&c.dc.id) {
        reasons.push("not in the claim's list of datacenters".to_owned());
    }
    if !spec.selector.matches(&c.dc.labels) {
        reasons.push(mismatch.to_owned());
    }
    if !c.dc.schedulable {
        reasons.push("not schedulable (set by an operator)".to_owned());
    }
    if c.liveness == Liveness::Down {
        reasons.push("down: its agent missed its heartbeats".to_owned());
    }
    if let Some((w, id)) = c.usage.closed_within(window).next() {
        reasons.push(format!(
            "in maintenance {id} from {} to {}",
            format_instant(w.start),
            w.end
                .map_or_else(|| "further notice".to_owned(), format_instant)
        ));
    }
    reasons
}

/// The short names of the filters that rule `c` out whatever its capacity,
/// in the order [`static_reasons`] gives them.
fn static_filters(c: &Candidate<'_>, spec: &ClaimSpec, window: Window) -> Vec<String> {
    let mut filters = Vec::new();
    if !spec.datacenters.is_empty() && !spec.datacenters.contains(&c.dc.id) {
        filters.push("datacenters".to_owned());
    }
    if !spec.selector.matches(&c.dc.labels) {
        filters.push("selector".to_owned());
    }
    if !c.dc.schedulable {
        filters.push("unschedulable".to_owned());
    }
    if c.liveness == Liveness::Down {
        filters.push("down".to_owned());
    }
    if c.usage.closed_within(window).next().is_some() {
        filters.push("maintenance".to_owned());
    }
    filters
}

/// The classes a unit needs (non-zero), in class order.
type Needs<'s> = Vec<(&'s ResourceClass, u64)>;

/// One datacenter's running state while a claim is placed.
struct Slot<'c, 'd, 'v> {
    cand: &'c Candidate<'d>,
    /// Whether nothing but capacity stands in the way.
    eligible: bool,
    /// Still placeable at every instant of the window, per needed class
    /// (a window into one vector shared by every slot: a claim over many
    /// datacenters allocates once).
    avail: &'v mut [u64],
    /// Per needed class, the instant at which the least is left.
    tight: &'v [u64],
    /// Total capacity, per needed class.
    cap: &'v [u64],
    /// Units of this claim placed here so far.
    placed: u64,
}

impl Slot<'_, '_, '_> {
    /// How many more units fit in what is left.
    fn fit_count(&self, needs: &Needs<'_>) -> u64 {
        needs
            .iter()
            .zip(self.avail.iter())
            .map(|((_, need), have)| have / need)
            .min()
            .unwrap_or(0)
    }

    /// Fraction of capacity allocated, summed over the unit's classes: the
    /// ranking key of `binpack` (highest first) and `spread` (lowest first).
    fn fullness(&self) -> f64 {
        self.avail
            .iter()
            .zip(self.cap.iter())
            .map(|(left, cap)| {
                if *cap == 0 {
                    1.0
                } else {
                    1.0 - (*left as f64 / *cap as f64)
                }
            })
            .sum()
    }

    /// The classes in which not even one unit fits, as filter names.
    fn short_classes(&self, needs: &Needs<'_>) -> Vec<String> {
        needs
            .iter()
            .zip(self.avail.iter())
            .filter(|((_, need), have)| *have < need)
            .map(|((class, _), _)| format!("capacity:{class}"))
            .collect()
    }

    /// Why not even one unit fits, class by class; for a claim that starts
    /// later, the instant where the least is left.
    fn shortfalls(&self, needs: &Needs<'_>, window: Window, now: u64) -> Vec<String> {
        needs
            .iter()
            .zip(self.avail.iter().zip(self.tight))
            .filter(|((_, need), (have, _))| *have < need)
            .map(|((class, need), (have, at))| {
                if self.cand.dc.inventory.contains_key(*class) {
                    let when = if window.start > now || *at > window.start {
                        format!(" at {}", format_instant(*at))
                    } else {
                        String::new()
                    };
                    format!(
                        "{class}: a unit needs {}, {} available{when}",
                        class.format_short(*need),
                        class.format_short(*have)
                    )
                } else {
                    format!("{class}: not offered here")
                }
            })
            .collect()
    }
}

fn limit_per_dc(spec: &ClaimSpec) -> u64 {
    let mut limit = u64::from(spec.count);
    if spec.distinct_datacenters {
        limit = 1;
    }
    if spec.max_per_datacenter > 0 {
        limit = limit.min(u64::from(spec.max_per_datacenter));
    }
    limit
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Places `spec` on `candidates` from now until released, whole or not at
/// all; a round-robin claim starts after the first datacenter.
pub fn schedule(candidates: &[Candidate<'_>], spec: &ClaimSpec) -> Outcome {
    schedule_after(candidates, spec, None, Window::always(), 0)
}

/// The next slot at or after `from`, in a ring of `n`, that `takes`.
fn next_in_turn(n: usize, from: usize, takes: impl Fn(usize) -> bool) -> Option<usize> {
    (0..n).map(|k| (from + k) % n).find(|i| takes(*i))
}

/// Places `spec` on `candidates` over `window` (decided at `now`), whole
/// or not at all; a round-robin claim gives its first unit to the first
/// datacenter in id order after `rotation` (the `last_datacenter` of the
/// previous one). Ties go to the smallest id.
pub fn schedule_after(
    candidates: &[Candidate<'_>],
    spec: &ClaimSpec,
    rotation: Option<&str>,
    window: Window,
    now: u64,
) -> Outcome {
    schedule_seeded(candidates, spec, rotation, window, now, None)
}

/// A number from `seed` and `id` that looks random and is always the same
/// for the same two (SplitMix64 over FNV-1a): the order ties are broken in.
fn tie_key(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// [`schedule_after`], with binpack and spread ties broken in an order
/// drawn from `tie_seed` (deterministic for a given seed) instead of by
/// id, so that equal datacenters share the first placements.
pub fn schedule_seeded(
    candidates: &[Candidate<'_>],
    spec: &ClaimSpec,
    rotation: Option<&str>,
    window: Window,
    now: u64,
    tie_seed: Option<u64>,
) -> Outcome {
    let mut cands: Vec<&Candidate<'_>> = candidates.iter().collect();
    cands.sort_by(|a, b| a.dc.id.cmp(&b.dc.id));
    let mut ranking: Vec<usize> = (0..cands.len()).collect();
    if let Some(seed) = tie_seed {
        ranking.sort_by_key(|i| (tie_key(seed, &cands[*i].dc.id), *i));
    }
    let per_dc_limit = limit_per_dc(spec);
    let needs: Needs<'_> = spec.unit.iter().filter(|(_, n)| *n > 0).collect();
    let mismatch = format!(
        "labels do not match selector {:?}",
        spec.selector.to_string()
    );

    let mut verdicts = Vec::with_capacity(cands.len());
    let mut slots: Vec<Slot<'_, '_, '_>> = Vec::with_capacity(cands.len());
    let width = needs.len();
    let mut avail = Vec::with_capacity(cands.len() * width);
    let mut tight = Vec::with_capacity(cands.len() * width);
    let mut cap = Vec::with_capacity(cands.len() * width);
    for cand in &cands {
        for (class, _) in &needs {
            let left = cand.available_over(class, window);
            avail.push(left.amount);
            tight.push(left.at);
            cap.push(cand.capacity(class));
        }
    }
    let (mut avail_rest, mut cap_rest): (&mut [u64], &[u64]) = (&mut avail, &cap);
    let mut tight_rest: &[u64] = &tight;
    for cand in &cands {
        let (avail, rest) = std::mem::take(&mut avail_rest).split_at_mut(width);
        avail_rest = rest;
        let (cap, rest) = cap_rest.split_at(width);
        cap_rest = rest;
        let (tight, rest) = tight_rest.split_at(width);
        tight_rest = rest;
        let slot = Slot {
            cand,
            eligible: false,
            avail,
            tight,
            cap,
            placed: 0,
        };
        let mut reasons = static_reasons(cand, spec, &mismatch, window);
        let eligible = reasons.is_empty();
        reasons.extend(slot.shortfalls(&needs, window, now));
        let fit = if reasons.is_empty() {
            slot.fit_count(&needs).min(per_dc_limit)
        } else {
            0
        };
        let mut filters = static_filters(cand, spec, window);
        filters.extend(slot.short_classes(&needs));
        verdicts.push(Verdict {
            datacenter: cand.dc.id.clone(),
            units_that_fit: u32::try_from(fit).unwrap_or(u32::MAX),
            reasons,
            filters,
        });
        slots.push(Slot { eligible, ..slot });
    }

    let mut rejected_by: BTreeMap<String, u32> = BTreeMap::new();
    for filter in verdicts.iter().flat_map(|v| &v.filters) {
        *rejected_by.entry(filter.clone()).or_default() += 1;
    }

    let mut done = 0u32;
    // Round-robin: where the turn is; the first slot after the rotation point.
    let mut turn = rotation.map_or(0, |after| {
        slots
            .iter()
            .position(|s| s.cand.dc.id.as_str() > after)
            .unwrap_or(0)
    });
    let mut last = None;
    while done < spec.count {
        let open = |slot: &Slot<'_, '_, '_>| {
            slot.eligible && slot.placed < per_dc_limit && slot.fit_count(&needs) > 0
        };
        let chosen = if spec.strategy == Strategy::RoundRobin {
            next_in_turn(slots.len(), turn, |i| open(&slots[i]))
        } else {
            // Only a strictly better score replaces the best so far, so
            // ties go to the first in `ranking`: the smallest id, or the
            // seed's order.
            let mut best: Option<(usize, f64)> = None;
            for &i in &ranking {
                let slot = &slots[i];
                if !open(slot) {
                    continue;
                }
                let score = slot.fullness();
                let better = match (best, spec.strategy) {
                    (None, _) => true,
                    (Some((_, b)), Strategy::Spread) => score < b,
                    (Some((_, b)), _) => score > b,
                };
                if better {
                    best = Some((i, score));
                }
            }
            best.map(|(i, _)| i)
        };
        let Some(i) = chosen else { break };
        turn = i + 1;
        last = Some(i);
        let slot = &mut slots[i];
        for (left, (_, need)) in slot.avail.iter_mut().zip(&needs) {
            *left -= need;
        }
        slot.placed += 1;
        done += 1;
    }

    if done < spec.count {
        // Say why each datacenter that took part could not take more.
        for (slot, verdict) in slots.iter().zip(verdicts.iter_mut()) {
            if !verdict.reasons.is_empty() {
                continue;
            }
            verdict.reasons = if slot.placed >= per_dc_limit {
                vec![format!(
                    "took {}, the most one datacenter may take of this claim",
                    plural(slot.placed, "unit")
                )]
            } else {
                let after = plural(slot.placed, "unit");
                slot.shortfalls(&needs, window, now)
                    .into_iter()
                    .map(|r| format!("after {after}: {r}"))
                    .collect()
            };
        }
        let fitting = verdicts.iter().filter(|v| v.units_that_fit > 0).count();
        let summary = if cands.is_empty() {
            "no datacenter is known yet (no agent has connected)".to_owned()
        } else {
            format!(
                "{done} of {} found a place; {fitting} of {} can take any unit",
                plural(u64::from(spec.count), "unit"),
                plural(cands.len() as u64, "datacenter"),
            )
        };
        return Outcome {
            fits: false,
            placements: Vec::new(),
            verdicts,
            summary,
            last_datacenter: None,
            rejected_by,
        };
    }

    let placements: Vec<Placement> = slots
        .iter()
        .filter(|s| s.placed > 0)
        .map(|s| Placement {
            datacenter: s.cand.dc.id.clone(),
            units: u32::try_from(s.placed).unwrap_or(u32::MAX),
            resources: spec.unit.times(s.placed),
            applied: false,
            apply_error: String::new(),
        })
        .collect();
    let summary = format!(
        "{} in {} ({})",
        plural(u64::from(spec.count), "unit"),
        plural(placements.len() as u64, "datacenter"),
        placements
            .iter()
            .map(|p| format!("{}×{}", p.datacenter, p.units))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Outcome {
        fits: true,
        placements,
        verdicts,
        summary,
        last_datacenter: last.map(|i| slots[i].cand.dc.id.clone()),
        rejected_by,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod over_time;
#[cfg(test)]
mod testkit;
