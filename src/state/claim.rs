//! A claim's life, split into registers that each have one kind of writer,
//! so that concurrent writers (a user releasing it, agents confirming their
//! parts, on any manager) can never undo one another:
//!
//! - the **record**: what was asked and where it was placed, written once by
//!   the manager that placed it;
//! - the **end**: written when the claim is released or expires. The
//!   lifecycle is monotone: once a claim has an end it never holds capacity
//!   again, whatever the timestamps of the other registers;
//! - one **applied flag per datacenter**: written only for results of that
//!   datacenter's agent.
//!
//! [`assemble`] derives the claim a client sees from the three.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crdt::LwwMap;
use crate::model::{Claim, ClaimState};

/// How a claim ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimEnd {
    /// The final state: released or expired.
    pub state: ClaimState,
    /// When, Unix ms.
    pub at_ms: u64,
}

impl ClaimEnd {
    /// Released at `at_ms`.
    pub fn released(at_ms: u64) -> Self {
        Self {
            state: ClaimState::Released,
            at_ms,
        }
    }

    /// Expired: its window ended at `end_ms`. Every manager that writes it
    /// writes the same value.
    pub fn expired(end_ms: u64) -> Self {
        Self {
            state: ClaimState::Expired,
            at_ms: end_ms,
        }
    }
}

/// What one datacenter's agent last said of its part of a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Whether the agent applied it.
    pub applied: bool,
    /// Why it could not, when it could not; empty otherwise.
    pub error: String,
    /// When the agent said so, Unix ms.
    pub at_ms: u64,
}

/// The claim as clients see it: the record, with each placement's flag from
/// its datacenter's register and the state derived. The record's own flags
/// and state are read only where no register says otherwise, which keeps
/// claims written before the split as they were.
pub fn assemble(
    record: &Claim,
    end: Option<&ClaimEnd>,
    applied: Option<&LwwMap<String, Applied>>,
) -> Claim {
    let mut claim = record.clone();
    let mut updated = record.created_ms.max(record.updated_ms);
    for p in &mut claim.placements {
        if let Some(flag) = applied.and_then(|m| m.get(&p.datacenter)) {
            p.applied = flag.applied;
            p.apply_error = flag.error.clone();
            updated = updated.max(flag.at_ms);
        }
    }
    let legacy_end =
        (record.state == ClaimState::Released).then(|| ClaimEnd::released(record.updated_ms));
    claim.state = match end.or(legacy_end.as_ref()) {
        Some(end) => {
            updated = updated.max(end.at_ms);
            end.state
        }
        None if claim.placements.iter().all(|p| p.applied) => ClaimState::Active,
        None if claim
            .placements
            .iter()
            .any(|p| !p.applied && !p.apply_error.is_empty()) =>
        {
            ClaimState::Failed
        }
        None => ClaimState::Placed,
    };
    claim.updated_ms = updated;
    claim
}

/// The flag registers of every claim: claim id → datacenter → flag.
pub type AppliedFlags = BTreeMap<String, LwwMap<String, Applied>>;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::clock::Timestamp;
    use crate::model::{ClaimSpec, Placement, Resources, Selector, Strategy as Rank};
    use crate::state::{Books, Change};

    fn record() -> Claim {
        let placement = |dc: &str| Placement {
            datacenter: dc.into(),
            units: 1,
            resources: Resources::parse_list("r", "compute.vcpu=2").unwrap(),
            applied: false,
            apply_error: String::new(),
        };
        Claim {
            id: "c-1".into(),
            spec: ClaimSpec {
                tenant: "acme".into(),
                request_id: String::new(),
                count: 2,
                profile: None,
                unit: Resources::parse_list("r", "compute.vcpu=2").unwrap(),
                selector: Selector::default(),
                datacenters: vec![],
                distinct_datacenters: false,
                max_per_datacenter: 0,
                strategy: Rank::Binpack,
                timing: Default::default(),
            },
            state: ClaimState::Placed,
            placements: vec![placement("dc-a"), placement("dc-b")],
            created_ms: 10,
            updated_ms: 10,
            window: crate::model::Window::always(),
        }
    }

    fn ts(ms: u64, counter: u32, node: u8) -> Timestamp {
        Timestamp {
            ms,
            counter,
            node: format!("m{node}"),
        }
    }

    /// One write a manager may make to the claim after placing it.
    fn arb_write() -> impl Strategy<Value = Change> {
        (0u64..20, 0u32..3, 0u8..3, 0u8..4).prop_map(|(ms, counter, node, what)| {
            let stamp = ts(ms, counter, node);
            // A stamp names one write (as the clock guarantees), so what is
            // written is a function of the stamp.
            let ok = (ms + u64::from(counter) + u64::from(node)) % 3 != 0;
            match what {
                0 => Change::end("c-1", stamp, ClaimEnd::released(100 + ms)),
                n => Change::applied(
                    "c-1",
                    if n == 1 { "dc-a" } else { "dc-b" },
                    stamp,
                    Applied {
                        applied: ok,
                        error: if ok {
                            String::new()
                        } else {
                            format!("full at {ms}")
                        },
                        at_ms: 100 + ms,
                    },
                ),
            }
        })
    }

    fn replay(writes: &[&Change]) -> Books {
        let mut books = Books::default();
        books.apply(&Change::claim(ts(1, 0, 0), record()));
        for w in writes {
            books.apply(w);
        }
        books
    }

    proptest! {
        /// Replicas that receive the same releases and agent results in any
        /// order, any number of times, show the same claim; a release among
        /// them ends it whatever the stamps of the results.
        #[test]
        fn releases_and_agent_results_converge_in_any_order(
            writes in prop::collection::vec(arb_write(), 0..12),
            order in any::<u64>(),
            dups in prop::collection::vec(0usize..12, 0..6),
        ) {
            let one = replay(&writes.iter().collect::<Vec<_>>());
            let mut shuffled: Vec<&Change> = writes.iter().collect();
            if !writes.is_empty() {
                for i in dups { shuffled.push(&writes[i % writes.len()]); }
            }
            let mut seed = order | 1;
            for i in (1..shuffled.len()).rev() {
                seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
                shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let two = replay(&shuffled);
            prop_assert_eq!(two.claims().get("c-1"), one.claims().get("c-1"));
            prop_assert_eq!(two.index(), one.index());

            let claim = one.claims().get("c-1").unwrap();
            let released = writes.iter().any(|w| matches!(w, Change::End { .. }));
            prop_assert_eq!(claim.state == ClaimState::Released, released);
            // Each datacenter's flag is the one its latest result set.
            for dc in ["dc-a", "dc-b"] {
                let latest = writes
                    .iter()
                    .filter_map(|w| match w {
                        Change::Applied { datacenter, register, .. } if datacenter == dc => {
                            Some((register.timestamp().clone(), register.get()?.applied))
                        }
                        _ => None,
                    })
                    .max_by(|a, b| a.0.cmp(&b.0));
                let shown = claim.placements.iter().find(|p| p.datacenter == dc).unwrap().applied;
                prop_assert_eq!(shown, latest.is_some_and(|(_, ok)| ok), "{}", dc);
            }
            if !released {
                let all = claim.placements.iter().all(|p| p.applied);
                prop_assert_eq!(claim.state == ClaimState::Active, all);
                // Failed exactly when some agent refused (and said why).
                let refused = claim.placements.iter().any(|p| !p.applied && !p.apply_error.is_empty());
                prop_assert_eq!(claim.state == ClaimState::Failed, refused && !all);
                prop_assert_eq!(claim.failure_reasons().len(), if claim.state == ClaimState::Failed {
                    claim.placements.iter().filter(|p| !p.applied && !p.apply_error.is_empty()).count()
                } else { 0 });
            }
        }
    }

    #[test]
    fn a_late_agent_result_does_not_bring_a_released_claim_back() {
        let release = Change::end("c-1", ts(5, 0, 1), ClaimEnd::released(50));
        let applied = |dc: &str| {
            Change::applied(
                "c-1",
                dc,
                ts(9, 0, 2),
                Applied {
                    applied: true,
                    error: String::new(),
                    at_ms: 90,
                },
            )
        };
        let books = replay(&[&release, &applied("dc-a"), &applied("dc-b")]);
        let claim = books.claims().get("c-1").unwrap();
        assert_eq!(
            claim.state,
            ClaimState::Released,
            "the release wins over newer results"
        );
        assert_eq!(claim.updated_ms, 90);
        assert_eq!(
            books.index().datacenter("dc-a").claims,
            0,
            "a released claim holds nothing"
        );

        let live = replay(&[&applied("dc-a"), &applied("dc-b")]);
        assert_eq!(live.claims().get("c-1").unwrap().state, ClaimState::Active);
        assert_eq!(
            live.index()
                .datacenter("dc-b")
                .applied
                .get(&crate::model::ResourceClass::parse("compute.vcpu").unwrap()),
            2
        );
    }

    #[test]
    fn a_claim_written_before_the_split_keeps_its_state_and_flags() {
        let mut old = record();
        old.state = ClaimState::Released;
        old.updated_ms = 77;
        old.placements[0].applied = true;
        let claim = assemble(&old, None, None);
        assert_eq!((claim.state, claim.updated_ms), (ClaimState::Released, 77));
        assert!(claim.placements[0].applied);
        let mut active = record();
        for p in &mut active.placements {
            p.applied = true;
        }
        active.state = ClaimState::Active;
        assert_eq!(assemble(&active, None, None).state, ClaimState::Active);
    }
}
