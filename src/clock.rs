//! A hybrid logical clock: physical milliseconds, a counter and the node id.
//!
//! Timestamps are totally ordered, so "the larger wins" is a merge rule every
//! manager agrees on. The clock never reads the system time itself: callers pass
//! the wall clock in, which keeps it deterministic under test.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in hybrid logical time; ordered by `(ms, counter, node)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Physical time in Unix milliseconds (the largest seen so far).
    pub ms: u64,
    /// Orders events within one millisecond.
    pub counter: u32,
    /// The node that made the stamp: makes stamps of different nodes distinct.
    pub node: String,
}

impl Timestamp {
    /// The smallest timestamp: older than anything a clock hands out.
    pub fn zero() -> Self {
        Self {
            ms: 0,
            counter: 0,
            node: String::new(),
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}@{}", self.ms, self.counter, self.node)
    }
}

/// Why a remote timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The remote clock runs ahead of ours by more than the allowed offset.
    #[error(
        "timestamp {stamp} from node {node:?} is {ahead_ms} ms ahead of the local clock (clock_offset allows {allowed_ms} ms)"
    )]
    TooFarAhead {
        /// The refused stamp's physical time.
        stamp: u64,
        /// The node that made it.
        node: String,
        /// How far ahead it is.
        ahead_ms: u64,
        /// The configured limit.
        allowed_ms: u64,
    },
}

/// One node's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct HybridClock {
    node: String,
    last_ms: u64,
    counter: u32,
    max_offset_ms: u64,
}

impl HybridClock {
    /// A clock for `node` that refuses remote stamps more than `max_offset` ahead.
    pub fn new(node: impl Into<String>, max_offset: Duration) -> Self {
        Self {
            node: node.into(),
            last_ms: 0,
            counter: 0,
            max_offset_ms: u64::try_from(max_offset.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The node this clock stamps for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// A new stamp for a local event at wall time `wall_ms`; strictly larger
    /// than every stamp this clock made or observed before.
    pub fn now(&mut self, wall_ms: u64) -> Timestamp {
        if wall_ms > self.last_ms {
            self.last_ms = wall_ms;
            self.counter = 0;
        } else {
            self.bump_counter();
        }
        self.stamp()
    }

    /// Takes in a stamp received from another node so that later local stamps
    /// order after it; refuses it when it is too far ahead of `wall_ms`.
    pub fn observe(&mut self, remote: &Timestamp, wall_ms: u64) -> Result<(), ClockError> {
        let ahead = remote.ms.saturating_sub(wall_ms);
        if ahead > self.max_offset_ms {
            return Err(ClockError::TooFarAhead {
                stamp: remote.ms,
                node: remote.node.clone(),
                ahead_ms: ahead,
                allowed_ms: self.max_offset_ms,
            });
        }
        let before = (self.last_ms, self.counter);
        let new_ms = self.last_ms.max(remote.ms).max(wall_ms);
        self.counter = match (new_ms == before.0, new_ms == remote.ms) {
            (true, true) => before.1.max(remote.counter),
            (true, false) => before.1,
            (false, true) => remote.counter,
            (false, false) => 0,
        };
        self.last_ms = new_ms;
        Ok(())
    }

    fn bump_counter(&mut self) {
        match self.counter.checked_add(1) {
            Some(c) => self.counter = c,
            // A counter run out within one millisecond: borrow the next one.
            None => {
                self.last_ms += 1;
                self.counter = 0;
            }
        }
    }

    fn stamp(&self) -> Timestamp {
        Timestamp {
            ms: self.last_ms,
            counter: self.counter,
            node: self.node.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock(node: &str) -> HybridClock {
        HybridClock::new(node, Duration::from_secs(1))
    }

    #[test]
    fn stamps_increase_even_when_wall_clock_goes_back() {
        let mut c = clock("a");
        let t1 = c.now(1_000);
        let t2 = c.now(900);
        let t3 = c.now(1_000);
        assert!(t1 < t2 && t2 < t3, "{t1} {t2} {t3}");
        assert_eq!(t2.ms, 1_000);
    }

    #[test]
    fn observed_remote_stamps_order_before_later_local_ones() {
        let mut a = clock("a");
        let mut b = clock("b");
        let remote = b.now(5_500);
        a.observe(&remote, 5_000).unwrap();
        let local = a.now(5_000);
        assert!(local > remote, "{local} must follow {remote}");
    }

    #[test]
    fn refuses_stamps_too_far_ahead() {
        let mut a = clock("a");
        let remote = Timestamp {
            ms: 10_000,
            counter: 0,
            node: "b".into(),
        };
        let err = a.observe(&remote, 8_000).unwrap_err();
        assert!(matches!(
            err,
            ClockError::TooFarAhead {
                ahead_ms: 2_000,
                allowed_ms: 1_000,
                ..
            }
        ));
        assert!(err.to_string().contains("clock_offset"));
        // A refused stamp does not move the clock.
        assert_eq!(a.now(8_000).ms, 8_000);
    }

    #[test]
    fn order_is_ms_then_counter_then_node() {
        let t = |ms, counter, node: &str| Timestamp {
            ms,
            counter,
            node: node.into(),
        };
        assert!(t(1, 9, "z") < t(2, 0, "a"));
        assert!(t(1, 1, "z") < t(1, 2, "a"));
        assert!(t(1, 1, "a") < t(1, 1, "b"));
    }

    proptest! {
        /// Whatever the wall clock and the remote stamps do, a clock's own
        /// stamps strictly increase and follow everything it observed.
        #[test]
        fn local_stamps_strictly_increase(events in prop::collection::vec((any::<bool>(), 0u64..10_000, 0u64..10_000, 0u32..4), 1..200)) {
            let mut c = HybridClock::new("a", Duration::from_millis(500));
            let mut last: Option<Timestamp> = None;
            let mut max_seen = Timestamp::zero();
            for (is_local, wall, remote_ms, counter) in events {
                if is_local {
                    let t = c.now(wall);
                    if let Some(prev) = &last { prop_assert!(&t > prev); }
                    prop_assert!(t > max_seen);
                    last = Some(t);
                } else {
                    let remote = Timestamp { ms: remote_ms, counter, node: "b".into() };
                    if c.observe(&remote, wall).is_ok() && remote > max_seen {
                        max_seen = remote;
                    }
                }
            }
        }
    }
}
