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
mod table;
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

use table::{RuledOut, Table};

use crate::model::{
    ClaimSpec, Datacenter, Inventory, Placement, ResourceClass, Window, format_instant,
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

/// Reasons a datacenter is ruled out whatever its capacity, one per filter
/// in `out`. `mismatch` is the reason given when the selector does not
/// match, formatted once per claim rather than once per datacenter.
fn static_reasons(c: &Candidate<'_>, out: RuledOut, mismatch: &str, window: Window) -> Vec<String> {
    let mut reasons = Vec::new();
    if out.has(RuledOut::DATACENTERS) {
        reasons.push("not in the claim's list of datacenters".to_owned());
    }
    if out.has(RuledOut::SELECTOR) {
        reasons.push(mismatch.to_owned());
    }
    if out.has(RuledOut::UNSCHEDULABLE) {
        reasons.push("not schedulable (set by an operator)".to_owned());
    }
    if out.has(RuledOut::DOWN) {
        reasons.push("down: its agent missed its heartbeats".to_owned());
    }
    if out.has(RuledOut::MAINTENANCE)
        && let Some((w, id)) = c.usage.closed_within(window).next()
    {
        reasons.push(format!(
            "in maintenance {id} from {} to {}",
            format_instant(w.start),
            w.end
                .map_or_else(|| "further notice".to_owned(), format_instant)
        ));
    }
    reasons
}

/// The short names of the filters in `out`, in the order [`static_reasons`]
/// gives them.
fn static_filters(out: RuledOut) -> Vec<String> {
    [
        (RuledOut::DATACENTERS, "datacenters"),
        (RuledOut::SELECTOR, "selector"),
        (RuledOut::UNSCHEDULABLE, "unschedulable"),
        (RuledOut::DOWN, "down"),
        (RuledOut::MAINTENANCE, "maintenance"),
    ]
    .into_iter()
    .filter(|(bit, _)| out.has(*bit))
    .map(|(_, name)| name.to_owned())
    .collect()
}

/// The classes of candidate `i` in which not even one more unit fits, as
/// filter names.
fn short_classes(table: &Table<'_, '_, '_>, i: usize) -> Vec<String> {
    table
        .short(i)
        .map(|((class, _), _)| format!("capacity:{class}"))
        .collect()
}

/// Why not even one more unit fits on candidate `i`, class by class; for a
/// claim that starts later, the instant where the least is left.
fn shortfalls(table: &Table<'_, '_, '_>, i: usize, window: Window, now: u64) -> Vec<String> {
    let cand = table.cands[i];
    table
        .short(i)
        .map(|((class, need), (have, at))| {
            if cand.dc.inventory.contains_key(*class) {
                let when = if window.start > now || at > window.start {
                    format!(" at {}", format_instant(at))
                } else {
                    String::new()
                };
                format!(
                    "{class}: a unit needs {}, {} available{when}",
                    class.format_short(*need),
                    class.format_short(have)
                )
            } else {
                format!("{class}: not offered here")
            }
        })
        .collect()
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
/// id, so that equal datacenters share the first placements. Every
/// datacenter's verdict is given: this is what explaining shows.
pub fn schedule_seeded(
    candidates: &[Candidate<'_>],
    spec: &ClaimSpec,
    rotation: Option<&str>,
    window: Window,
    now: u64,
    tie_seed: Option<u64>,
) -> Outcome {
    decide(candidates, spec, rotation, window, now, tie_seed, true)
}

/// The same decision as [`schedule_seeded`], for placing: when the claim
/// fits, no verdict is made (`verdicts` and `rejected_by` are empty), which
/// spares the text of one per datacenter; a claim that does not fit is
/// explained in full.
pub fn place_seeded(
    candidates: &[Candidate<'_>],
    spec: &ClaimSpec,
    rotation: Option<&str>,
    window: Window,
    now: u64,
    tie_seed: Option<u64>,
) -> Outcome {
    let outcome = decide(candidates, spec, rotation, window, now, tie_seed, false);
    if outcome.fits {
        outcome
    } else {
        schedule_seeded(candidates, spec, rotation, window, now, tie_seed)
    }
}

/// Each candidate's place in the order `seed` breaks ties in.
fn tie_ranks(table: &Table<'_, '_, '_>, seed: u64) -> Vec<usize> {
    let mut order: Vec<(u64, usize)> = table
        .cands
        .iter()
        .enumerate()
        .map(|(i, c)| (tie_key(seed, &c.dc.id), i))
        .collect();
    order.sort_unstable();
    let mut rank = vec![0; order.len()];
    for (pos, (_, i)) in order.into_iter().enumerate() {
        rank[i] = pos;
    }
    rank
}

/// The decision, with every datacenter's verdict when `explain`.
fn decide(
    candidates: &[Candidate<'_>],
    spec: &ClaimSpec,
    rotation: Option<&str>,
    window: Window,
    now: u64,
    tie_seed: Option<u64>,
    explain: bool,
) -> Outcome {
    let mut table = Table::new(candidates, spec, window, explain);
    let n = table.cands.len();
    let mut verdicts = Vec::with_capacity(if explain { n } else { 0 });
    if explain {
        let mismatch = format!(
            "labels do not match selector {:?}",
            spec.selector.to_string()
        );
        for i in 0..n {
            let (cand, out) = (table.cands[i], table.ruled_out[i]);
            let mut reasons = static_reasons(cand, out, &mismatch, window);
            reasons.extend(shortfalls(&table, i, window, now));
            let fit = if reasons.is_empty() {
                table.fit_count(i).min(table.limit)
            } else {
                0
            };
            let mut filters = static_filters(out);
            filters.extend(short_classes(&table, i));
            verdicts.push(Verdict {
                datacenter: cand.dc.id.clone(),
                units_that_fit: u32::try_from(fit).unwrap_or(u32::MAX),
                reasons,
                filters,
            });
        }
    }
    let mut rejected_by: BTreeMap<String, u32> = BTreeMap::new();
    for filter in verdicts.iter().flat_map(|v| &v.filters) {
        *rejected_by.entry(filter.clone()).or_default() += 1;
    }

    let rank = tie_seed.map(|seed| tie_ranks(&table, seed));
    let (done, last) = table.assign(spec.count, spec.strategy, rotation, rank.as_deref());

    if done < spec.count {
        // Say why each datacenter that took part could not take more.
        for (i, verdict) in verdicts.iter_mut().enumerate() {
            if !verdict.reasons.is_empty() {
                continue;
            }
            let placed = table.placed[i];
            verdict.reasons = if placed >= table.limit {
                vec![format!(
                    "took {}, the most one datacenter may take of this claim",
                    plural(placed, "unit")
                )]
            } else {
                let after = plural(placed, "unit");
                shortfalls(&table, i, window, now)
                    .into_iter()
                    .map(|r| format!("after {after}: {r}"))
                    .collect()
            };
        }
        let fitting = verdicts.iter().filter(|v| v.units_that_fit > 0).count();
        let summary = if n == 0 {
            "no datacenter is known yet (no agent has connected)".to_owned()
        } else {
            format!(
                "{done} of {} found a place; {fitting} of {} can take any unit",
                plural(u64::from(spec.count), "unit"),
                plural(n as u64, "datacenter"),
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

    let placements: Vec<Placement> = (0..n)
        .filter(|i| table.placed[*i] > 0)
        .map(|i| Placement {
            datacenter: table.cands[i].dc.id.clone(),
            units: u32::try_from(table.placed[i]).unwrap_or(u32::MAX),
            resources: spec.unit.times(table.placed[i]),
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
        last_datacenter: last.map(|i| table.cands[i].dc.id.clone()),
        rejected_by,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod over_time;
#[cfg(test)]
pub(crate) mod testkit;
