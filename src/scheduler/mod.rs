//! The scheduler: a pure function from (datacenters, their usage, a claim)
//! to a placement, or to an explanation of why there is none.
//!
//! For each unit it filters datacenters (schedulable, not down, label
//! selector, explicit list, `max_per_datacenter`, distinct datacenters),
//! checks capacity in every class the unit needs, then ranks what is left
//! (`binpack`: most allocated first, `spread`: least allocated first), ties
//! broken by datacenter id. A claim is placed whole or not at all.

mod liveness;
mod quota;
mod usage;

use std::collections::BTreeMap;

pub use liveness::{Liveness, LivenessPolicy};
pub use quota::{QuotaExceeded, check_quota};
pub use usage::{DatacenterUsage, tenant_usage, usage_by_datacenter};

use crate::model::{
    ClaimSpec, Datacenter, Inventory, Placement, ResourceClass, Resources, Strategy,
};

/// A datacenter as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The datacenter.
    pub dc: &'a Datacenter,
    /// Whether its agent is heard from.
    pub liveness: Liveness,
    /// theia's placements there now.
    pub usage: DatacenterUsage,
}

/// What theia may still place in one class of one datacenter:
/// `capacity − allocated − external`, where external usage is what the
/// management plane reports used beyond theia's applied placements.
pub fn available(inv: &Inventory, allocated: u64, applied: u64) -> u64 {
    let used = inv.total.saturating_sub(inv.free);
    let external = used.saturating_sub(applied);
    inv.capacity()
        .saturating_sub(allocated)
        .saturating_sub(external)
}

impl Candidate<'_> {
    /// What theia may still place here, per class.
    pub fn available(&self, class: &ResourceClass) -> u64 {
        self.dc.inventory.get(class).map_or(0, |inv| {
            available(
                inv,
                self.usage.allocated.get(class),
                self.usage.applied.get(class),
            )
        })
    }

    /// How much of `class` theia can hold here at all.
    fn capacity(&self, class: &ResourceClass) -> u64 {
        self.dc.inventory.get(class).map_or(0, Inventory::capacity)
    }
}

/// Why a datacenter can or cannot take a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The datacenter.
    pub datacenter: String,
    /// Units of the claim it could take on its own.
    pub units_that_fit: u32,
    /// Why not; empty when it takes at least one unit.
    pub reasons: Vec<String>,
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
}

/// Reasons a datacenter is ruled out whatever its capacity.
fn static_reasons(c: &Candidate<'_>, spec: &ClaimSpec) -> Vec<String> {
    let mut reasons = Vec::new();
    if !spec.datacenters.is_empty() && !spec.datacenters.contains(&c.dc.id) {
        reasons.push("not in the claim's list of datacenters".to_owned());
    }
    if !spec.selector.matches(&c.dc.labels) {
        reasons.push(format!(
            "labels do not match selector {:?}",
            spec.selector.to_string()
        ));
    }
    if !c.dc.schedulable {
        reasons.push("not schedulable (set by an operator)".to_owned());
    }
    if c.liveness == Liveness::Down {
        reasons.push("down: its agent missed its heartbeats".to_owned());
    }
    reasons
}

/// How many units fit in `avail`, and the classes that stop a single one.
fn units_fitting(
    c: &Candidate<'_>,
    unit: &Resources,
    avail: &BTreeMap<ResourceClass, u64>,
) -> (u64, Vec<String>) {
    let mut fit = u64::MAX;
    let mut short = Vec::new();
    for (class, need) in unit.iter().filter(|(_, n)| *n > 0) {
        let have = avail.get(class).copied().unwrap_or(0);
        fit = fit.min(have / need);
        if have < need {
            if c.dc.inventory.contains_key(class) {
                short.push(format!(
                    "{class}: a unit needs {}, {} available",
                    class.format(need),
                    class.format(have)
                ));
            } else {
                short.push(format!("{class}: not offered here"));
            }
        }
    }
    (fit, short)
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

/// Fraction of capacity allocated, summed over the unit's classes: the
/// ranking key of `binpack` (highest first) and `spread` (lowest first).
fn fullness(c: &Candidate<'_>, unit: &Resources, avail: &BTreeMap<ResourceClass, u64>) -> f64 {
    unit.iter()
        .filter(|(_, n)| *n > 0)
        .map(|(class, _)| {
            let cap = c.capacity(class);
            if cap == 0 {
                return 1.0;
            }
            let left = avail.get(class).copied().unwrap_or(0);
            1.0 - (left as f64 / cap as f64)
        })
        .sum()
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Places `spec` on `candidates`, whole or not at all.
pub fn schedule(candidates: &[Candidate<'_>], spec: &ClaimSpec) -> Outcome {
    let mut cands: Vec<&Candidate<'_>> = candidates.iter().collect();
    cands.sort_by(|a, b| a.dc.id.cmp(&b.dc.id));
    let per_dc_limit = limit_per_dc(spec);

    let mut avail: Vec<BTreeMap<ResourceClass, u64>> = cands
        .iter()
        .map(|c| {
            spec.unit
                .iter()
                .map(|(class, _)| (class.clone(), c.available(class)))
                .collect()
        })
        .collect();
    let eligible: Vec<bool> = cands
        .iter()
        .map(|c| static_reasons(c, spec).is_empty())
        .collect();

    let verdicts: Vec<Verdict> = cands
        .iter()
        .zip(&avail)
        .map(|(c, a)| {
            let mut reasons = static_reasons(c, spec);
            let (fit, short) = units_fitting(c, &spec.unit, a);
            reasons.extend(short);
            let fit = if reasons.is_empty() {
                fit.min(per_dc_limit)
            } else {
                0
            };
            Verdict {
                datacenter: c.dc.id.clone(),
                units_that_fit: u32::try_from(fit).unwrap_or(u32::MAX),
                reasons,
            }
        })
        .collect();

    let mut placed = vec![0u64; cands.len()];
    let mut done = 0u32;
    while done < spec.count {
        let best = (0..cands.len())
            .filter(|&i| eligible[i] && placed[i] < per_dc_limit)
            .filter(|&i| units_fitting(cands[i], &spec.unit, &avail[i]).0 >= 1)
            .map(|i| (i, fullness(cands[i], &spec.unit, &avail[i])))
            // Candidates are in id order and only a strictly better score
            // replaces the best so far, so ties go to the smallest id.
            .fold(None::<(usize, f64)>, |best, (i, score)| match best {
                None => Some((i, score)),
                Some((_, b)) => {
                    let better = match spec.strategy {
                        Strategy::Binpack => score > b,
                        Strategy::Spread => score < b,
                    };
                    if better { Some((i, score)) } else { best }
                }
            });
        let Some((i, _)) = best else { break };
        for (class, need) in spec.unit.iter() {
            if let Some(left) = avail[i].get_mut(class) {
                *left -= need;
            }
        }
        placed[i] += 1;
        done += 1;
    }

    if done < spec.count {
        let fitting = verdicts.iter().filter(|v| v.reasons.is_empty()).count();
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
        };
    }

    let placements: Vec<Placement> = cands
        .iter()
        .zip(&placed)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| Placement {
            datacenter: c.dc.id.clone(),
            units: u32::try_from(*n).unwrap_or(u32::MAX),
            resources: spec.unit.times(*n),
            applied: false,
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
    }
}

#[cfg(test)]
mod tests;
