//! What is held over time in one datacenter (or by one tenant): a step
//! function kept as change points, so that the peak over any window is
//! exact, and costs one walk over the change points before the window's
//! end, never a scan of claims or a sampling of instants.
//!
//! Most claims start when they are made and last until released: they are
//! held "from the start of time" (`base`), because no decision is ever made
//! for an instant before it was made, and cost no change point at all.
//!
//! Decisions read a timeline far more often than it changes (every claim
//! weighs every datacenter; it changes one or a few), so each class's step
//! function is kept, once asked for, as sorted levels with the highest
//! level from each point on: the peak over an open-ended window is a binary
//! search, over a bounded one a walk of the points inside it. Any change
//! drops what was kept.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{ResourceClass, Resources, Window};

/// The amounts that start and stop being held at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Step {
    up: Resources,
    down: Resources,
}

impl Step {
    fn is_empty(&self) -> bool {
        self.up.is_zero() && self.down.is_zero()
    }

    fn delta(&self, class: &ResourceClass) -> i128 {
        i128::from(self.up.get(class)) - i128::from(self.down.get(class))
    }
}

/// The highest amount held within a window, and the first instant it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// How much.
    pub amount: u64,
    /// When it is first reached, Unix ms.
    pub at: u64,
}

/// One class's step function, as decisions read it.
#[derive(Debug, Clone, Default)]
struct Levels {
    /// Held before the first change point.
    base: i128,
    /// The change points, in order.
    times: Vec<u64>,
    /// Held from `times[i]` until the next point.
    levels: Vec<i128>,
    /// The highest of `levels[i..]`, with the first point it is held at.
    highest_from: Vec<(i128, u64)>,
    /// Where the last search ended: decisions ask about `now` again and
    /// again, so the answer is most often where it was (or one on), and a
    /// look there spares a binary search whose every step misses the cache.
    hint: Hint,
}

/// A position remembered between reads, by any thread.
#[derive(Debug, Default)]
struct Hint(AtomicUsize);

impl Clone for Hint {
    fn clone(&self) -> Self {
        Self(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

impl Levels {
    fn build(timeline: &Timeline, class: &ResourceClass) -> Self {
        let base = i128::from(timeline.base.get(class));
        let (mut times, mut levels) = (Vec::new(), Vec::new());
        let mut level = base;
        for (t, step) in &timeline.steps {
            level += step.delta(class);
            times.push(*t);
            levels.push(level);
        }
        let mut highest_from = vec![(0, 0); levels.len()];
        for i in (0..levels.len()).rev() {
            highest_from[i] = match highest_from.get(i + 1) {
                Some(&(h, at)) if h > levels[i] => (h, at),
                _ => (levels[i], times[i]),
            };
        }
        Self {
            base,
            times,
            levels,
            highest_from,
            hint: Hint::default(),
        }
    }

    /// How many change points are at or before `t`.
    fn upto(&self, t: u64) -> usize {
        let at = |i: usize| {
            i <= self.times.len()
                && (i == 0 || self.times[i - 1] <= t)
                && self.times.get(i).is_none_or(|x| *x > t)
        };
        let hint = self.hint.0.load(Ordering::Relaxed);
        if at(hint) {
            return hint;
        }
        if at(hint + 1) {
            self.hint.0.store(hint + 1, Ordering::Relaxed);
            return hint + 1;
        }
        let found = self.times.partition_point(|x| *x <= t);
        self.hint.0.store(found, Ordering::Relaxed);
        found
    }

    fn level(&self, t: u64) -> i128 {
        self.level_at(self.upto(t))
    }

    /// Held after the first `i` change points.
    fn level_at(&self, i: usize) -> i128 {
        match i {
            0 => self.base,
            i => self.levels[i - 1],
        }
    }

    fn peak(&self, window: Window) -> (i128, u64) {
        let i = self.upto(window.start);
        let mut peak = (self.level_at(i), window.start);
        match window.end {
            None => {
                if let Some(&(h, at)) = self.highest_from.get(i)
                    && h > peak.0
                {
                    peak = (h, at);
                }
            }
            Some(end) => {
                for j in i..self.times.len() {
                    if self.times[j] >= end {
                        break;
                    }
                    if self.levels[j] > peak.0 {
                        peak = (self.levels[j], self.times[j]);
                    }
                }
            }
        }
        peak
    }
}

/// Held amounts over time, per class.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Held from the start of time (until a `down` in `steps`).
    base: Resources,
    /// Change points, by instant.
    steps: BTreeMap<u64, Step>,
    /// Each class's levels, built when first asked for since the last change.
    levels: OnceLock<BTreeMap<ResourceClass, Levels>>,
}

impl PartialEq for Timeline {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base && self.steps == other.steps
    }
}

impl Eq for Timeline {}

fn clamp(level: i128) -> u64 {
    u64::try_from(level.max(0)).unwrap_or(u64::MAX)
}

impl Timeline {
    /// Nothing held, ever.
    pub const fn new() -> Self {
        Self {
            base: Resources::new(),
            steps: BTreeMap::new(),
            levels: OnceLock::new(),
        }
    }

    /// `class`'s levels, built if need be.
    fn levels_of(&self, class: &ResourceClass) -> Option<&Levels> {
        self.levels
            .get_or_init(|| {
                self.classes()
                    .map(|c| (c.clone(), Levels::build(self, c)))
                    .collect()
            })
            .get(class)
    }

    /// Holds `amount` over `window`, or from the start of time to the
    /// window's end when `from_the_start`.
    pub fn add(&mut self, window: Window, from_the_start: bool, amount: &Resources) {
        if window.end.is_some_and(|e| e <= window.start) {
            return;
        }
        self.levels = OnceLock::new();
        if from_the_start {
            self.base.add(amount);
        } else {
            self.steps.entry(window.start).or_default().up.add(amount);
        }
        if let Some(end) = window.end {
            self.steps.entry(end).or_default().down.add(amount);
        }
    }

    /// Undoes [`add`](Self::add) with the same arguments exactly.
    pub fn remove(&mut self, window: Window, from_the_start: bool, amount: &Resources) {
        if window.end.is_some_and(|e| e <= window.start) {
            return;
        }
        self.levels = OnceLock::new();
        if from_the_start {
            self.base.subtract(amount);
        } else {
            self.take(window.start, |s| s.up.subtract(amount));
        }
        if let Some(end) = window.end {
            self.take(end, |s| s.down.subtract(amount));
        }
    }

    fn take(&mut self, at: u64, f: impl FnOnce(&mut Step)) {
        if let Some(step) = self.steps.get_mut(&at) {
            f(step);
            if step.is_empty() {
                self.steps.remove(&at);
            }
        }
    }

    /// Whether nothing is held and nothing will be.
    pub fn is_empty(&self) -> bool {
        self.base.is_zero() && self.steps.is_empty()
    }

    /// How much of `class` is held at `t`.
    pub fn level(&self, class: &ResourceClass, t: u64) -> u64 {
        if self.steps.is_empty() {
            return self.base.get(class);
        }
        self.levels_of(class).map_or(0, |l| clamp(l.level(t)))
    }

    /// Everything held at `t`, per class.
    pub fn at(&self, t: u64) -> Resources {
        let mut out = Resources::new();
        for class in self.classes() {
            let level = self.level(class, t);
            if level > 0 {
                out.set(class.clone(), level);
            }
        }
        out
    }

    /// The highest amount of `class` held at any instant of `window`.
    pub fn peak(&self, class: &ResourceClass, window: Window) -> Peak {
        let start = window.start;
        if self.steps.is_empty() {
            return Peak {
                amount: self.base.get(class),
                at: start,
            };
        }
        let Some(levels) = self.levels_of(class) else {
            return Peak {
                amount: 0,
                at: start,
            };
        };
        let (amount, at) = levels.peak(window);
        Peak {
            amount: clamp(amount),
            at,
        }
    }

    /// The highest amount of `class` that `self` and `other` hold together
    /// at any instant of `window`.
    pub fn peak_with(&self, other: &Timeline, class: &ResourceClass, window: Window) -> Peak {
        if other.is_empty() {
            return self.peak(class, window);
        }
        let mut level = i128::from(self.base.get(class)) + i128::from(other.base.get(class));
        let mut deltas: Vec<(u64, i128)> = self
            .steps
            .iter()
            .chain(other.steps.iter())
            .filter(|(t, _)| window.end.is_none_or(|e| **t < e))
            .map(|(t, s)| (*t, s.delta(class)))
            .collect();
        deltas.sort_unstable_by_key(|(t, _)| *t);
        let mut i = 0;
        while i < deltas.len() && deltas[i].0 <= window.start {
            level += deltas[i].1;
            i += 1;
        }
        let mut peak = (level, window.start);
        while i < deltas.len() {
            let t = deltas[i].0;
            while i < deltas.len() && deltas[i].0 == t {
                level += deltas[i].1;
                i += 1;
            }
            if level > peak.0 {
                peak = (level, t);
            }
        }
        Peak {
            amount: clamp(peak.0),
            at: peak.1,
        }
    }

    /// The peak of every class held at some time, over `window`.
    pub fn peaks(&self, window: Window) -> Resources {
        let mut out = Resources::new();
        for class in self.classes() {
            let peak = self.peak(class, window);
            if peak.amount > 0 {
                out.set(class.clone(), peak.amount);
            }
        }
        out
    }

    /// Every class held at some time, in order, once each.
    pub fn classes(&self) -> impl Iterator<Item = &ResourceClass> {
        let mut classes: Vec<&ResourceClass> = self
            .base
            .iter()
            .map(|(c, _)| c)
            .chain(
                self.steps
                    .values()
                    .flat_map(|s| s.up.iter().map(|(c, _)| c)),
            )
            .collect();
        classes.sort();
        classes.dedup();
        classes.into_iter()
    }

    /// The instants after `t` at which something stops being held, in
    /// order: where a later start may find room.
    pub fn releases_after(&self, t: u64) -> impl Iterator<Item = u64> + '_ {
        self.steps
            .range(t.saturating_add(1)..)
            .filter(|(_, s)| !s.down.is_zero())
            .map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn vcpu() -> ResourceClass {
        ResourceClass::parse("compute.vcpu").unwrap()
    }

    fn gpu() -> ResourceClass {
        ResourceClass::parse("compute.gpu").unwrap()
    }

    fn amount(vcpu_n: u64, gpu_n: u64) -> Resources {
        let mut r = Resources::new();
        if vcpu_n > 0 {
            r.set(vcpu(), vcpu_n);
        }
        if gpu_n > 0 {
            r.set(gpu(), gpu_n);
        }
        r
    }

    /// One held window: start, end (or none), from the start of time, vCPU, GPU.
    type Held = (u64, Option<u64>, bool, u64, u64);

    fn arb_held() -> impl Strategy<Value = Held> {
        (
            0u64..30,
            prop::option::of(1u64..15),
            any::<bool>(),
            0u64..5,
            0u64..3,
        )
            .prop_map(|(s, len, base, v, g)| (s, len.map(|l| s + l), base, v, g))
    }

    fn window(h: &Held) -> Window {
        Window {
            start: h.0,
            end: h.1,
        }
    }

    /// The oracle: the level at `t`, summing every window that holds then.
    fn naive(held: &[Held], class: &ResourceClass, t: u64) -> u64 {
        held.iter()
            .filter(|h| (h.2 || h.0 <= t) && h.1.is_none_or(|e| t < e))
            .map(|h| amount(h.3, h.4).get(class))
            .sum()
    }

    proptest! {
        /// Level and peak at every instant of a small horizon agree with a
        /// sum over every window, after adds and removes in any order.
        #[test]
        fn peaks_agree_with_every_instant(
            held in prop::collection::vec(arb_held(), 0..12),
            removed in prop::collection::vec(any::<bool>(), 12),
            from in 0u64..40,
            len in prop::option::of(1u64..20),
            queries in prop::collection::vec(0u64..60, 0..24),
        ) {
            let mut tl = Timeline::new();
            for h in &held {
                tl.add(window(h), h.2, &amount(h.3, h.4));
            }
            let mut kept = Vec::new();
            for (h, gone) in held.iter().zip(&removed) {
                if *gone {
                    tl.remove(window(h), h.2, &amount(h.3, h.4));
                } else {
                    kept.push(*h);
                }
            }
            let horizon = 60;
            let end = len.map(|l| from + l);
            for class in [vcpu(), gpu()] {
                for t in 0..horizon {
                    prop_assert_eq!(tl.level(&class, t), naive(&kept, &class, t), "level at {}", t);
                }
                // Asked in any order: what the last read remembered never
                // changes an answer.
                for &t in queries.iter().chain(&[horizon, 0, from]) {
                    prop_assert_eq!(tl.level(&class, t), naive(&kept, &class, t), "level at {}", t);
                    let w = Window { start: t, end: None };
                    let want = (t..=t.max(horizon)).map(|u| naive(&kept, &class, u)).max().unwrap();
                    prop_assert_eq!(tl.peak(&class, w).amount, want, "peak from {}", t);
                }
                let instants = from..end.unwrap_or(horizon).max(from + 1);
                let want = instants.clone().map(|t| naive(&kept, &class, t)).max().unwrap();
                let first = instants.clone().find(|t| naive(&kept, &class, *t) == want).unwrap();
                let peak = tl.peak(&class, Window { start: from, end });
                prop_assert_eq!(peak, Peak { amount: want, at: first });
                prop_assert_eq!(tl.peaks(Window { start: from, end }).get(&class), want);
                prop_assert_eq!(tl.at(from).get(&class), naive(&kept, &class, from));
            }
            // Two timelines together peak where their sum does.
            let (mine, theirs): (Vec<Held>, Vec<Held>) = kept.iter().partition(|h| h.3 % 2 == 0);
            let (mut a, mut b) = (Timeline::new(), Timeline::new());
            for h in &mine { a.add(window(h), h.2, &amount(h.3, h.4)); }
            for h in &theirs { b.add(window(h), h.2, &amount(h.3, h.4)); }
            for class in [vcpu(), gpu()] {
                let instants = from..end.unwrap_or(horizon).max(from + 1);
                let want = instants.clone().map(|t| naive(&kept, &class, t)).max().unwrap();
                let first = instants.clone().find(|t| naive(&kept, &class, *t) == want).unwrap();
                prop_assert_eq!(a.peak_with(&b, &class, Window { start: from, end }), Peak { amount: want, at: first });
                prop_assert_eq!(b.peak_with(&a, &class, Window { start: from, end }), Peak { amount: want, at: first });
            }
            if kept.is_empty() {
                prop_assert!(tl.is_empty());
                prop_assert_eq!(&tl, &Timeline::new());
            }
        }
    }

    #[test]
    fn a_window_that_ends_when_another_starts_does_not_stack() {
        let mut tl = Timeline::new();
        tl.add(Window::between(10, 20), false, &amount(4, 0));
        tl.add(Window::between(20, 30), false, &amount(4, 0));
        assert_eq!(tl.peak(&vcpu(), Window::from(0)).amount, 4);
        assert_eq!(tl.peak(&vcpu(), Window::between(0, 10)).amount, 0);
        assert_eq!(
            tl.peak(&vcpu(), Window::between(15, 25)),
            Peak { amount: 4, at: 15 }
        );
        tl.add(Window::between(25, 40), false, &amount(1, 0));
        assert_eq!(
            tl.peak(&vcpu(), Window::from(0)),
            Peak { amount: 5, at: 25 }
        );
        assert_eq!(tl.releases_after(20).collect::<Vec<_>>(), [30, 40]);
        // Nothing held is no class at all, not a class at zero.
        assert_eq!(tl.at(50), Resources::new());
        assert_eq!(tl.peaks(Window::between(0, 10)), Resources::new());
        assert_eq!(tl.at(12), amount(4, 0));
        assert_eq!(tl.peaks(Window::from(0)), amount(5, 0));
        assert_eq!(tl.releases_after(19).collect::<Vec<_>>(), [20, 30, 40]);
        assert!(!tl.is_empty());
    }

    #[test]
    fn held_from_the_start_costs_no_change_point() {
        let mut tl = Timeline::new();
        tl.add(Window::from(100), true, &amount(3, 1));
        assert_eq!(tl.level(&vcpu(), 0), 3, "held from the start of time");
        assert_eq!(tl.peak(&gpu(), Window::between(500, 600)).amount, 1);
        assert_eq!(tl.classes().collect::<Vec<_>>(), [&gpu(), &vcpu()]);
        assert_eq!(tl.releases_after(0).count(), 0);
        // Equal only with the same holdings, whatever was asked of either.
        let mut other = Timeline::new();
        other.add(Window::from(100), true, &amount(3, 0));
        assert_ne!(tl, other);
        other.add(Window::from(0), true, &amount(0, 1));
        assert_eq!(tl, other);
        other.add(Window::between(5, 9), false, &amount(1, 0));
        assert_ne!(tl, other, "a change point alone makes them differ");
        // An empty window holds nothing and removing it changes nothing.
        tl.add(Window::between(5, 5), false, &amount(9, 0));
        tl.remove(Window::between(5, 5), true, &amount(3, 1));
        assert_eq!(tl.level(&vcpu(), 5), 3);
        tl.remove(Window::from(100), true, &amount(3, 1));
        assert!(tl.is_empty());
    }
}
