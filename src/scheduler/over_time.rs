//! Properties of the scheduler over time, on the real books: random
//! sequences of windowed claims, releases, expiries and clock advances,
//! judged by an oracle that sums, instant by instant, what every claim
//! holds, with none of the scheduler's or the timeline's arithmetic.

use proptest::prelude::{
    Just, ProptestConfig, Strategy as Gen, any, prop, prop_assert, prop_assert_eq, prop_oneof,
    proptest,
};

use super::*;
use crate::clock::Timestamp;
use crate::model::{
    Claim, ClaimState, Labels, Maintenance, Resources, Selector, Strategy, Tenant, Timing,
};
use crate::state::{Books, Change, ClaimEnd};

fn vcpu() -> ResourceClass {
    ResourceClass::parse("compute.vcpu").unwrap()
}

/// One step of a sequence.
#[derive(Debug, Clone)]
enum Op {
    /// A claim for tenant `tenant` of `count` units of `unit` vCPU,
    /// starting `offset` after now (0: now), lasting `len` (none: until released).
    Create {
        tenant: usize,
        count: u32,
        unit: u64,
        offset: u64,
        len: Option<u64>,
        spread: bool,
    },
    /// Releases the `n`-th claim made so far, if it is live.
    Release(usize),
    /// Moves the clock on, expiring what ended (as the timekeeper does).
    Advance(u64),
    /// Maintenance on datacenter `dc` taking `vcpu` (none: all of it),
    /// from `offset` after now for `len` (none: until cancelled); forced or not.
    Maintain {
        dc: usize,
        vcpu: Option<u64>,
        offset: u64,
        len: Option<u64>,
        force: bool,
    },
}

fn arb_op() -> impl Gen<Value = Op> {
    prop_oneof![
        4 => (0usize..2, 1u32..4, 1u64..5, prop_oneof![Just(0u64), 1u64..20], prop::option::of(1u64..20), any::<bool>())
            .prop_map(|(tenant, count, unit, offset, len, spread)| Op::Create { tenant, count, unit, offset, len, spread }),
        1 => (0usize..20).prop_map(Op::Release),
        2 => (1u64..12).prop_map(Op::Advance),
        1 => (0usize..3, prop::option::of(1u64..12), 0u64..15, prop::option::of(1u64..20), any::<bool>())
            .prop_map(|(dc, vcpu, offset, len, force)| Op::Maintain { dc, vcpu, offset, len, force }),
    ]
}

/// A datacenter with `total` vCPU, `reserved` of it held back, over-committed by `ratio`.
fn datacenter(i: usize, total: u64, reserved: u64, ratio: f64) -> Datacenter {
    let mut dc = Datacenter::new(format!("dc{i}"), Labels::new());
    let mut inv = Inventory::reported(total, total);
    inv.reserved = reserved.min(total);
    inv.allocation_ratio = ratio;
    dc.inventory.insert(vcpu(), inv);
    dc
}

/// What the oracle keeps of each claim placed: its window, where its
/// units went, and when it was released.
struct Made {
    id: String,
    tenant: usize,
    window: Window,
    placed: Vec<(String, u64)>,
    total: u64,
    released_at: Option<u64>,
}

impl Made {
    fn holds_at(&self, t: u64) -> bool {
        self.window.start <= t
            && self.window.end.is_none_or(|e| t < e)
            && self.released_at.is_none_or(|r| t < r)
    }
}

fn stamp(n: &mut u32) -> Timestamp {
    *n += 1;
    Timestamp {
        ms: u64::from(*n),
        counter: 0,
        node: "m".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// No datacenter over capacity and no tenant over quota at any instant;
    /// every claim placed whole; a one-unit claim is refused only when no
    /// datacenter has room for it at every instant of its window.
    #[test]
    fn no_instant_is_over_capacity_or_over_quota(
        shapes in prop::collection::vec((4u64..16, 0u64..3, prop_oneof![Just(1.0), Just(1.5), Just(2.0)]), 1..4),
        quotas in (4u64..24, 4u64..24),
        ops in prop::collection::vec(arb_op(), 1..30),
    ) {
        let dcs: Vec<Datacenter> = shapes
            .iter()
            .enumerate()
            .map(|(i, (total, reserved, ratio))| datacenter(i, *total, *reserved, *ratio))
            .collect();
        // The oracle's capacity: what an operator would compute by hand.
        let capacity: Vec<u64> = shapes
            .iter()
            .map(|(total, reserved, ratio)| ((total - reserved.min(total)) as f64 * ratio).floor() as u64)
            .collect();
        let tenants: Vec<Tenant> = [quotas.0, quotas.1]
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut quota = Resources::new();
                quota.set(vcpu(), *q);
                Tenant { name: format!("t{i}"), owner: String::new(), delegates: vec![], labels: Labels::new(), quota }
            })
            .collect();
        let mut books = Books::default();
        let mut made: Vec<Made> = Vec::new();
        // Maintenance accepted: datacenter, window, vCPU taken (none: all).
        let mut taken: Vec<(usize, Window, Option<u64>)> = Vec::new();
        // Claims a forced maintenance displaced that fit nowhere else.
        let mut at_risk: std::collections::BTreeSet<String> = Default::default();
        let closed = |taken: &[(usize, Window, Option<u64>)], i: usize, t: u64| {
            taken.iter().any(|(d, w, v)| *d == i && v.is_none() && w.contains(t))
        };
        let out_for_maintenance = |taken: &[(usize, Window, Option<u64>)], i: usize, t: u64| -> u64 {
            taken.iter().filter(|(d, w, _)| *d == i && w.contains(t)).filter_map(|(_, _, v)| *v).sum()
        };
        let (mut now, mut n) = (100u64, 0u32);
        for op in ops {
            match op {
                Op::Create { tenant, count, unit, offset, len, spread } => {
                    let timing = Timing {
                        start_ms: (offset > 0).then_some(now + offset),
                        end_ms: None,
                        duration_ms: len,
                        earliest: false,
                    };
                    let window = timing.resolve(now).unwrap();
                    let mut spec = ClaimSpec {
                        tenant: format!("t{tenant}"),
                        request_id: String::new(),
                        count,
                        profile: None,
                        unit: Resources::new(),
                        selector: Selector::default(),
                        datacenters: vec![],
                        distinct_datacenters: false,
                        max_per_datacenter: 0,
                        strategy: if spread { Strategy::Spread } else { Strategy::Binpack },
                        timing,
                    };
                    spec.unit.set(vcpu(), unit);
                    let horizon = window.end.unwrap_or(now + 100);
                    let held_by = |t: u64, who: &dyn Fn(&Made) -> u64| -> u64 {
                        made.iter().filter(|m| m.holds_at(t)).map(who).sum()
                    };
                    let quota = check_quota(&tenants[tenant], &books.index().tenant(&spec.tenant).held, &spec.total(), window, now);
                    // Refused on quota exactly when some instant would exceed it.
                    let over_quota = (window.start..horizon).any(|t| {
                        held_by(t, &|m| if m.tenant == tenant { m.total } else { 0 }) + spec.total().get(&vcpu()) > tenants[tenant].quota.get(&vcpu())
                    });
                    prop_assert_eq!(quota.is_err(), over_quota, "quota verdict");
                    if quota.is_err() {
                        continue;
                    }
                    let cands: Vec<Candidate<'_>> = dcs
                        .iter()
                        .map(|dc| Candidate { dc, liveness: Liveness::Alive, usage: books.index().datacenter(&dc.id) })
                        .collect();
                    let out = schedule_after(&cands, &spec, None, window, now);
                    let placed: u32 = out.placements.iter().map(|p| p.units).sum();
                    prop_assert_eq!(out.fits, placed == count, "whole or nothing");
                    if count == 1 {
                        let room = (0..dcs.len()).any(|i| {
                            (window.start..horizon).all(|t| {
                                !closed(&taken, i, t)
                                    && held_by(t, &|m| m.placed.iter().filter(|(d, _)| *d == dcs[i].id).map(|(_, a)| a).sum())
                                        + out_for_maintenance(&taken, i, t)
                                        + unit
                                        <= capacity[i]
                            })
                        });
                        prop_assert_eq!(out.fits, room, "a one-unit claim fits where there is room");
                    }
                    if !out.fits {
                        continue;
                    }
                    let claim = Claim {
                        id: format!("c{}", made.len()),
                        spec: spec.clone(),
                        state: ClaimState::Placed,
                        placements: out.placements.clone(),
                        created_ms: now,
                        updated_ms: now,
                        window,
                    };
                    books.apply(&Change::claim(stamp(&mut n), claim));
                    made.push(Made {
                        id: format!("c{}", made.len()),
                        tenant,
                        window,
                        placed: out.placements.iter().map(|p| (p.datacenter.clone(), p.resources.get(&vcpu()))).collect(),
                        total: spec.total().get(&vcpu()),
                        released_at: None,
                    });
                }
                Op::Release(i) => {
                    let Some(m) = made.get_mut(i) else { continue };
                    if m.released_at.is_some() || m.window.ended_by(now) {
                        continue;
                    }
                    m.released_at = Some(now);
                    books.apply(&Change::end(&m.id, stamp(&mut n), ClaimEnd::released(now)));
                }
                Op::Maintain { dc, vcpu: amount, offset, len, force } => {
                    let Some(d) = dcs.get(dc) else { continue };
                    let window = Window { start: now + offset, end: len.map(|l| now + offset + l) };
                    let m = Maintenance {
                        id: format!("m{n}"),
                        datacenter: d.id.clone(),
                        resources: amount.map(|v| { let mut r = Resources::new(); r.set(vcpu(), v); r }),
                        window,
                        reason: "test".into(),
                        created_by: "admin".into(),
                        created_ms: now,
                        cancelled_ms: None,
                    };
                    let cands: Vec<Candidate<'_>> = dcs
                        .iter()
                        .map(|dc| Candidate { dc, liveness: Liveness::Alive, usage: books.index().datacenter(&dc.id) })
                        .collect();
                    let here_claims: Vec<&Claim> = books.claims().values().filter(|c| c.placed_in(&d.id).is_some()).collect();
                    let found = impact(&cands[dc], &here_claims, &m, now);
                    prop_assert_eq!(found.over.is_empty(), found.displaced.is_empty(), "over capacity exactly when someone is displaced");
                    if !found.over.is_empty() && !force {
                        continue;
                    }
                    books.apply(&Change::maintenance(stamp(&mut n), m));
                    taken.push((dc, window, amount));
                    for id in found.displaced {
                        let cands: Vec<Candidate<'_>> = dcs
                            .iter()
                            .map(|dc| Candidate { dc, liveness: Liveness::Alive, usage: books.index().datacenter(&dc.id) })
                            .collect();
                        let claim = books.claims()[&id].clone();
                        match replacement(&cands, &claim, &d.id, now) {
                            Some(outcome) => {
                                let mut moved = claim.clone();
                                moved.placements.retain(|p| p.datacenter != d.id);
                                moved.placements.extend(outcome.placements.iter().cloned());
                                books.apply(&Change::claim(stamp(&mut n), moved.clone()));
                                let record = made.iter_mut().find(|m| m.id == id).unwrap();
                                record.placed = moved.placements.iter().map(|p| (p.datacenter.clone(), p.resources.get(&vcpu()))).collect();
                            }
                            None => {
                                at_risk.insert(id);
                            }
                        }
                    }
                }
                Op::Advance(dt) => {
                    now += dt;
                    let due: Vec<(String, u64)> = books
                        .index()
                        .ending_by(now)
                        .map(|id| (id.to_owned(), books.claims()[id].window.end.unwrap()))
                        .collect();
                    for (id, end) in due {
                        books.apply(&Change::end(&id, stamp(&mut n), ClaimEnd::expired(end)));
                    }
                    prop_assert!(books.index().ending_by(now).next().is_none());
                }
            }
            // At every instant from now on, nothing is over: claims and
            // maintenance together fit, nothing is held where the whole
            // datacenter is in maintenance, but for the claims a forced
            // maintenance left at risk, which the books show as such.
            for t in now..now + 100 {
                for (i, dc) in dcs.iter().enumerate() {
                    let held_here = |m: &Made| -> u64 {
                        m.placed.iter().filter(|(d, _)| *d == dc.id).map(|(_, a)| a).sum()
                    };
                    let held: u64 = made
                        .iter()
                        .filter(|m| m.holds_at(t) && !at_risk.contains(&m.id))
                        .map(held_here)
                        .sum();
                    if closed(&taken, i, t) {
                        prop_assert_eq!(held, 0, "{} holds {} in maintenance at {}", dc.id, held, t);
                    }
                    let out = out_for_maintenance(&taken, i, t);
                    // (Maintenance alone may take more than there is.)
                    prop_assert!(held == 0 || held + out <= capacity[i], "{} holds {} + {} > {} at {}", dc.id, held, out, capacity[i], t);
                    let risky: u64 = made
                        .iter()
                        .filter(|m| m.holds_at(t) && at_risk.contains(&m.id))
                        .map(held_here)
                        .sum();
                    if risky > 0 && (closed(&taken, i, t) || held + out + risky > capacity[i]) {
                        let here = Candidate { dc, liveness: Liveness::Alive, usage: books.index().datacenter(&dc.id) };
                        prop_assert!(!here.over_committed(now).is_empty(), "{} is over at {} and says so", dc.id, t);
                    }
                }
                for (i, tenant) in tenants.iter().enumerate() {
                    let held: u64 = made.iter().filter(|m| m.tenant == i && m.holds_at(t)).map(|m| m.total).sum();
                    prop_assert!(held <= tenant.quota.get(&vcpu()), "{} holds {} at {}", tenant.name, held, t);
                }
            }
            // The books agree with the oracle on what each claim is now.
            for m in &made {
                let state = books.claims()[&m.id].state_at(now);
                let want = if m.released_at.is_some() {
                    ClaimState::Released
                } else if m.window.ended_by(now) {
                    ClaimState::Expired
                } else if now < m.window.start {
                    ClaimState::Pending
                } else {
                    ClaimState::Placed
                };
                prop_assert_eq!(state, want, "{}", m.id);
            }
        }
    }
}
