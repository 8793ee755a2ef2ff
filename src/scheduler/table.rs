//! One claim's view of every candidate, and the choice of where each unit
//! goes: the decision itself, shared by placing and explaining, with no
//! text made on the way (explaining formats from the same table).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Candidate, Liveness};
use crate::model::{ClaimSpec, ResourceClass, Strategy, Window};

/// The classes a unit needs (non-zero), in class order.
pub(super) type Needs<'s> = Vec<(&'s ResourceClass, u64)>;

/// The filters that rule a datacenter out whatever its capacity, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct RuledOut(u8);

impl RuledOut {
    /// Not in the claim's list of datacenters.
    pub(super) const DATACENTERS: u8 = 1;
    /// Its labels do not match the claim's selector.
    pub(super) const SELECTOR: u8 = 2;
    /// An operator set it unschedulable.
    pub(super) const UNSCHEDULABLE: u8 = 4;
    /// Its agent missed its heartbeats.
    pub(super) const DOWN: u8 = 8;
    /// The whole datacenter is in maintenance within the window.
    pub(super) const MAINTENANCE: u8 = 16;

    /// Checks `c` against `spec` over `window`.
    pub(super) fn check(c: &Candidate<'_>, spec: &ClaimSpec, window: Window) -> Self {
        let mut bits = 0;
        if !spec.datacenters.is_empty() && !spec.datacenters.contains(&c.dc.id) {
            bits |= Self::DATACENTERS;
        }
        if !spec.selector.matches(&c.dc.labels) {
            bits |= Self::SELECTOR;
        }
        if !c.dc.schedulable {
            bits |= Self::UNSCHEDULABLE;
        }
        if c.liveness == Liveness::Down {
            bits |= Self::DOWN;
        }
        if c.usage.closed_within(window).next().is_some() {
            bits |= Self::MAINTENANCE;
        }
        Self(bits)
    }

    /// Whether `filter` (one of the constants) rules it out.
    pub(super) fn has(self, filter: u8) -> bool {
        self.0 & filter != 0
    }

    /// Whether nothing but capacity stands in the way.
    pub(super) fn is_clear(self) -> bool {
        self.0 == 0
    }
}

/// Per candidate (in id order) and per needed class, what is left, laid
/// out flat: row `i`, column `k` is class `k` of candidate `i`.
pub(super) struct Table<'c, 'd, 's> {
    /// The candidates, in id order.
    pub(super) cands: Vec<&'c Candidate<'d>>,
    /// What one unit needs.
    pub(super) needs: Needs<'s>,
    /// Still placeable at every instant of the window.
    avail: Vec<u64>,
    /// The instant at which the least is left.
    tight: Vec<u64>,
    /// Total capacity.
    cap: Vec<u64>,
    /// What rules each candidate out whatever its capacity.
    pub(super) ruled_out: Vec<RuledOut>,
    /// Units of this claim placed on each so far.
    pub(super) placed: Vec<u64>,
    /// The most units one datacenter may take of this claim.
    pub(super) limit: u64,
}

impl<'c, 'd, 's> Table<'c, 'd, 's> {
    /// Weighs every candidate for `spec` over `window`. Unless `explain`,
    /// the room of a candidate ruled out by its filters is not looked up
    /// (it is taken as none): only an explanation shows it.
    pub(super) fn new(
        candidates: &'c [Candidate<'d>],
        spec: &'s ClaimSpec,
        window: Window,
        explain: bool,
    ) -> Self {
        let mut cands: Vec<&'c Candidate<'d>> = candidates.iter().collect();
        // The books hand them over in id order already; sorting is for
        // other callers.
        if !cands.is_sorted_by(|a, b| a.dc.id <= b.dc.id) {
            cands.sort_by(|a, b| a.dc.id.cmp(&b.dc.id));
        }
        let needs: Needs<'s> = spec.unit.iter().filter(|(_, n)| *n > 0).collect();
        let cells = cands.len() * needs.len();
        let (mut avail, mut tight, mut cap) = (
            Vec::with_capacity(cells),
            Vec::with_capacity(cells),
            Vec::with_capacity(cells),
        );
        let mut ruled_out = Vec::with_capacity(cands.len());
        for cand in &cands {
            let out = RuledOut::check(cand, spec, window);
            ruled_out.push(out);
            for (class, _) in &needs {
                if out.is_clear() || explain {
                    let left = cand.available_over(class, window);
                    avail.push(left.amount);
                    tight.push(left.at);
                } else {
                    avail.push(0);
                    tight.push(window.start);
                }
                cap.push(cand.capacity(class));
            }
        }
        let placed = vec![0; cands.len()];
        Self {
            cands,
            needs,
            avail,
            tight,
            cap,
            ruled_out,
            placed,
            limit: limit_per_dc(spec),
        }
    }

    fn row<'t>(&self, cells: &'t [u64], i: usize) -> &'t [u64] {
        let w = self.needs.len();
        &cells[i * w..(i + 1) * w]
    }

    /// What is left of each needed class on candidate `i`, with the instant
    /// where the least is left.
    pub(super) fn left(
        &self,
        i: usize,
    ) -> impl Iterator<Item = (&(&'s ResourceClass, u64), (u64, u64))> {
        self.needs.iter().zip(
            self.row(&self.avail, i)
                .iter()
                .copied()
                .zip(self.row(&self.tight, i).iter().copied()),
        )
    }

    /// How many more units fit on candidate `i` in what is left.
    pub(super) fn fit_count(&self, i: usize) -> u64 {
        self.needs
            .iter()
            .zip(self.row(&self.avail, i))
            .map(|((_, need), have)| have / need)
            .min()
            .unwrap_or(0)
    }

    /// Fraction of capacity allocated on candidate `i`, summed over the
    /// unit's classes: the ranking key of `binpack` (highest first) and
    /// `spread` (lowest first).
    fn fullness(&self, i: usize) -> f64 {
        self.row(&self.avail, i)
            .iter()
            .zip(self.row(&self.cap, i))
            .map(|(left, cap)| {
                if *cap == 0 {
                    1.0
                } else {
                    1.0 - (*left as f64 / *cap as f64)
                }
            })
            .sum()
    }

    /// Whether candidate `i` can take one more unit.
    fn open(&self, i: usize) -> bool {
        self.ruled_out[i].is_clear() && self.placed[i] < self.limit && self.fit_count(i) > 0
    }

    /// Gives one unit to candidate `i`.
    fn take(&mut self, i: usize) {
        let w = self.needs.len();
        for (left, (_, need)) in self.avail[i * w..(i + 1) * w].iter_mut().zip(&self.needs) {
            *left -= need;
        }
        self.placed[i] += 1;
    }

    /// Places up to `count` units: round-robin gives the first to the first
    /// candidate in id order after `rotation`, then goes on in turn;
    /// binpack and spread give each unit to the best score, ties to the
    /// lowest `rank` (per candidate; none: the smallest id). Returns how
    /// many were placed and the candidate that took the last.
    pub(super) fn assign(
        &mut self,
        count: u32,
        strategy: Strategy,
        rotation: Option<&str>,
        rank: Option<&[usize]>,
    ) -> (u32, Option<usize>) {
        let n = self.cands.len();
        let mut done = 0u32;
        let mut last = None;
        if strategy == Strategy::RoundRobin {
            let mut turn = rotation.map_or(0, |after| {
                self.cands
                    .iter()
                    .position(|c| c.dc.id.as_str() > after)
                    .unwrap_or(0)
            });
            while done < count {
                let Some(i) = (0..n).map(|k| (turn + k) % n).find(|i| self.open(*i)) else {
                    break;
                };
                self.take(i);
                done += 1;
                turn = i + 1;
                last = Some(i);
            }
            return (done, last);
        }
        // A heap of the open candidates by score, then by rank: only the
        // one that took a unit changes, so each unit costs O(log n).
        let rank = |i: usize| rank.map_or(i, |r| r[i]);
        let key = |t: &Self, i: usize| Ranked {
            score: score_key(t.fullness(i), strategy),
            rank: Reverse(rank(i)),
            index: i,
        };
        let mut heap: BinaryHeap<Ranked> = (0..n)
            .filter(|i| self.open(*i))
            .map(|i| key(self, i))
            .collect();
        while done < count {
            let Some(best) = heap.pop() else { break };
            let i = best.index;
            self.take(i);
            done += 1;
            last = Some(i);
            if self.open(i) {
                heap.push(key(self, i));
            }
        }
        (done, last)
    }

    /// The classes of candidate `i` in which not even one more unit fits.
    pub(super) fn short(
        &self,
        i: usize,
    ) -> impl Iterator<Item = (&(&'s ResourceClass, u64), (u64, u64))> {
        self.left(i).filter(|((_, need), (have, _))| have < need)
    }
}

/// An open candidate in the heap: best score first, then first in rank.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    /// The score, higher better (see [`score_key`]).
    score: i64,
    rank: Reverse<usize>,
    index: usize,
}

/// `fullness` as a number that orders as it does, higher first for
/// binpack and lower first for spread. Fullness is a sum of at least one
/// `1 − left / capacity` with `left ≤ capacity`, so it is a non-negative
/// float (never −0), whose bits order as the float does and fit an `i64`.
#[allow(clippy::cast_possible_wrap)]
fn score_key(fullness: f64, strategy: Strategy) -> i64 {
    let bits = fullness.to_bits() as i64;
    if strategy == Strategy::Spread {
        -bits
    } else {
        bits
    }
}

/// The most units one datacenter may take of `spec`.
pub(super) fn limit_per_dc(spec: &ClaimSpec) -> u64 {
    let mut limit = u64::from(spec.count);
    if spec.distinct_datacenters {
        limit = 1;
    }
    if spec.max_per_datacenter > 0 {
        limit = limit.min(u64::from(spec.max_per_datacenter));
    }
    limit
}
