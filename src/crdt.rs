//! State-based CRDTs: a last-writer-wins register and a map of them.
//!
//! Every durable object in theia lives in an [`LwwMap`]. Updates are *delta
//! mutators*: a mutator returns a small map holding just the change, which is
//! merged locally and shipped to stores and peers as it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// A state that replicas converge on by merging.
///
/// `merge` must be **commutative** (`a ⊔ b = b ⊔ a`), **associative**
/// (`(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)`) and **idempotent** (`a ⊔ a = a`), so that
/// replicas receiving the same updates in any order, any number of times,
/// end up equal. The property tests below check all three.
pub trait Crdt {
    /// Folds `other` into `self`.
    fn merge(&mut self, other: &Self);
}

/// A last-writer-wins register: a value (or a tombstone) and its timestamp.
///
/// A hybrid-logical-clock timestamp names one write of one node, so two
/// registers with equal timestamps hold the same write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lww<T> {
    ts: Timestamp,
    value: Option<T>,
}

impl<T> Lww<T> {
    /// A register holding `value`, written at `ts`.
    pub fn new(ts: Timestamp, value: T) -> Self {
        Self {
            ts,
            value: Some(value),
        }
    }

    /// A register recording a deletion at `ts`.
    pub fn tombstone(ts: Timestamp) -> Self {
        Self { ts, value: None }
    }

    /// The value, or `None` after a deletion.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// When the current value was written.
    pub fn timestamp(&self) -> &Timestamp {
        &self.ts
    }

    /// Whether this register records a deletion.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

impl<T: Clone> Crdt for Lww<T> {
    fn merge(&mut self, other: &Self) {
        // On equal stamps a deletion wins, so that merge stays commutative
        // even if a buggy writer reused a stamp for a write and a delete.
        let deletes_tie = other.ts == self.ts && other.is_tombstone() && !self.is_tombstone();
        if other.ts > self.ts || deletes_tie {
            *self = other.clone();
        }
    }
}

/// A map of last-writer-wins registers, keeping tombstones so that a deletion
/// wins over older writes that arrive late.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwMap<K: Ord, V> {
    entries: BTreeMap<K, Lww<V>>,
}

impl<K: Ord, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone> LwwMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The delta that sets `key` to `value` at `ts`; merge it to apply it.
    #[must_use]
    pub fn update_mutator(key: K, ts: Timestamp, value: V) -> Self {
        Self::single(key, Lww::new(ts, value))
    }

    /// The delta that deletes `key` at `ts`; merge it to apply it.
    #[must_use]
    pub fn remove_mutator(key: K, ts: Timestamp) -> Self {
        Self::single(key, Lww::tombstone(ts))
    }

    /// A map of one register, as read back from a store.
    #[must_use]
    pub fn single(key: K, register: Lww<V>) -> Self {
        let mut entries = BTreeMap::new();
        entries.insert(key, register);
        Self { entries }
    }

    /// Puts `register` (or nothing) under `key` whatever the timestamps: for
    /// the one writer undoing a change its store refused, and for pruning
    /// history past its retention. Not a merge: replicas do not converge
    /// through it.
    pub fn restore(&mut self, key: K, register: Option<Lww<V>>) {
        match register {
            Some(r) => {
                self.entries.insert(key, r);
            }
            None => {
                self.entries.remove(&key);
            }
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).and_then(Lww::get)
    }

    /// The register under `key`, tombstone or not.
    pub fn register(&self, key: &K) -> Option<&Lww<V>> {
        self.entries.get(key)
    }

    /// Whether a live value is stored under `key`.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Live entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .iter()
            .filter_map(|(k, r)| r.get().map(|v| (k, v)))
    }

    /// Live values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Every register including tombstones: what a store must persist.
    pub fn registers(&self) -> impl Iterator<Item = (&K, &Lww<V>)> {
        self.entries.iter()
    }

    /// How many live entries there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Ord + Clone, V: Clone> Crdt for LwwMap<K, V> {
    fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.entries {
            match self.entries.get_mut(key) {
                Some(ours) => ours.merge(theirs),
                None => {
                    self.entries.insert(key.clone(), theirs.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Map = LwwMap<u8, u32>;

    fn ts(ms: u64, counter: u32, node: &str) -> Timestamp {
        Timestamp {
            ms,
            counter,
            node: node.into(),
        }
    }

    /// One write: the value is a function of the stamp, since a stamp names
    /// exactly one write (as a hybrid logical clock guarantees); the same
    /// stamp may still come as a delete, to exercise the tie rule.
    fn delta(key: u8, ms: u64, counter: u32, node: u8, delete: bool) -> Map {
        let stamp = ts(ms, counter, &format!("n{node}"));
        if delete {
            Map::remove_mutator(key, stamp)
        } else {
            let value = (ms as u32) * 100 + counter * 10 + u32::from(node);
            Map::update_mutator(key, stamp, value)
        }
    }

    fn arb_delta() -> impl Strategy<Value = Map> {
        (0u8..4, 0u64..6, 0u32..3, 0u8..3, any::<bool>())
            .prop_map(|(k, ms, c, n, d)| delta(k, ms, c, n, d))
    }

    fn arb_map() -> impl Strategy<Value = Map> {
        prop::collection::vec(arb_delta(), 0..12).prop_map(|ds| {
            let mut m = Map::new();
            for d in &ds {
                m.merge(d);
            }
            m
        })
    }

    fn merged(a: &Map, b: &Map) -> Map {
        let mut out = a.clone();
        out.merge(b);
        out
    }

    #[test]
    fn later_write_wins_and_tombstone_beats_older_write() {
        let mut m = Map::new();
        m.merge(&Map::update_mutator(1, ts(10, 0, "a"), 7));
        m.merge(&Map::update_mutator(1, ts(5, 0, "b"), 9));
        assert_eq!(m.get(&1), Some(&7), "an older write must not win");
        m.merge(&Map::remove_mutator(1, ts(11, 0, "b")));
        assert_eq!(m.get(&1), None);
        m.merge(&Map::update_mutator(1, ts(10, 5, "a"), 8));
        assert_eq!(
            m.get(&1),
            None,
            "a late, older write must not resurrect a deleted key"
        );
        assert_eq!(m.registers().count(), 1, "the tombstone is kept");
        assert!(m.is_empty());
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_map(), b in arb_map()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in arb_map(), b in arb_map(), c in arb_map()) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_map(), b in arb_map()) {
            prop_assert_eq!(merged(&a, &a), a.clone());
            let ab = merged(&a, &b);
            prop_assert_eq!(merged(&ab, &b), ab);
        }

        /// Replicas that receive the same deltas in any order, with any
        /// duplication, converge on the same state.
        #[test]
        fn replicas_converge(
            deltas in prop::collection::vec(arb_delta(), 1..30),
            order in any::<u64>(),
            dups in prop::collection::vec(0usize..30, 0..10),
        ) {
            let mut one = Map::new();
            for d in &deltas { one.merge(d); }

            let mut shuffled: Vec<&Map> = deltas.iter().collect();
            for i in dups { shuffled.push(&deltas[i % deltas.len()]); }
            // A deterministic shuffle driven by the generated seed.
            let mut seed = order | 1;
            for i in (1..shuffled.len()).rev() {
                seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
                shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let mut two = Map::new();
            for d in shuffled { two.merge(d); }
            prop_assert_eq!(one, two);
        }
    }
}
